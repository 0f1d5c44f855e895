"""Files per host with real Celery workers: two workers on this machine with different HF_HOMEs and MODELDESK_HOSTs
stand for two hosts that do not share a cache; a third with the first one's HF_HOME for a host sharing its volume."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelfiles import cache
from modelfiles.models import Download, Location, ModelFile
from modelfiles.tasks import scan_cache_task
from tests.gguf_files import tiny_gguf
from tests.modelfiles import cache_file
from tests.modelfiles.hubfixtures import gguf_content, hf_env, hub, sha256_of
from tests.workers import celery_worker

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

REPO = "acme/Pulled-GGUF"
FILE = "pulled.Q4_K_M.gguf"


def wait_for(what: str, predicate: Callable[[], object], seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def host_env(hf_env: dict[str, str], home: Path, host: str) -> dict[str, str]:
    return {**hf_env, "HF_HOME": str(home), "MODELDESK_HOST": host}


def files() -> dict[str, tuple[str, bool]]:
    return {row.filename: (row.location.label, row.present) for row in ModelFile.objects.select_related("location")}


def location_of(host: str) -> Location:
    return wait_for(
        f"a worker of {host} started", lambda: next((r for r in Location.objects.all() if host in r.hosts), None)
    )


def test_two_hosts_scan_their_own_caches_and_a_pull_aimed_at_one_lands_there_only(
    hub, hf_env, tmp_path, client_for, operator, viewer
):
    home_a, home_b = tmp_path / "host-a", tmp_path / "host-b"
    cache_file(home_a, "acme/A-GGUF", "a.Q4_K_M.gguf")
    cache_file(home_b, "acme/B-GGUF", "b.Q4_K_M.gguf", content=tiny_gguf(seed=1))
    content = gguf_content(1_500_000)
    hub.add_repo(REPO, files={FILE: content})

    with (
        celery_worker(extra_env=host_env(hf_env, home_a, "host-a")),
        celery_worker(extra_env=host_env(hf_env, home_b, "host-b")) as worker_b,
    ):
        location_a, location_b = location_of("host-a"), location_of("host-b")
        assert location_a.pk != location_b.pk
        assert (Path(location_a.path), Path(location_b.path)) == (home_a / "hub", home_b / "hub")
        # Each worker scanned its cache on start: each file once, on its own host.
        wait_for("both start-up scans", lambda: len(ModelFile.objects.filter(present=True)) == 2)
        assert files() == {"a.Q4_K_M.gguf": ("host-a", True), "b.Q4_K_M.gguf": ("host-b", True)}

        # New files on both hosts, then the periodic scan: it goes to the shared queue (either worker takes it),
        # scans there and sends a scan to the other location's queue. Both new files appearing means both hosts
        # scanned after each other; neither scan marked the other host's files gone.
        cache_file(home_a, "acme/A-GGUF", "a2.Q4_K_M.gguf", content=tiny_gguf(seed=2))
        cache_file(home_b, "acme/B-GGUF", "b2.Q4_K_M.gguf", content=tiny_gguf(seed=3))
        scan_cache_task.delay()
        wait_for("both hosts rescanned", lambda: ModelFile.objects.filter(present=True).count() == 4, seconds=30)
        assert files() == {
            "a.Q4_K_M.gguf": ("host-a", True),
            "a2.Q4_K_M.gguf": ("host-a", True),
            "b.Q4_K_M.gguf": ("host-b", True),
            "b2.Q4_K_M.gguf": ("host-b", True),
        }
        assert set(ModelFile.objects.values_list("state", flat=True)) == {ModelFile.State.OK}

        # A pull aimed at host-b: done by host-b's worker, into host-b's cache only.
        response = client_for(operator).post(
            "/api/modelfiles/pull", {"repo": REPO, "filename": FILE, "host": "host-b"}, content_type="application/json"
        )
        assert response.status_code == 201, response.content
        download = wait_for(
            "the pull finished",
            lambda: (row := Download.objects.get(pk=response.json()["id"])) and not row.is_active and row,
        )
        assert download.status == Download.Status.COMPLETED, download.error_message
        assert (download.host, download.worker) == ("host-b", worker_b.hostname)

    landed = list((home_b / "hub" / cache.repo_folder_name(REPO) / "snapshots").glob(f"*/{FILE}"))
    assert len(landed) == 1 and sha256_of(landed[0]) == hashlib.sha256(content).hexdigest()
    assert not (home_a / "hub" / cache.repo_folder_name(REPO)).exists()
    pulled = ModelFile.objects.select_related("location").get(filename=FILE)
    assert (pulled.location.label, pulled.present) == ("host-b", True)

    api = client_for(viewer)
    on_b = api.get("/api/modelfiles", {"host": "host-b"}).json()["data"]
    assert sorted((row["filename"], row["host"]) for row in on_b) == [
        ("b.Q4_K_M.gguf", "host-b"),
        ("b2.Q4_K_M.gguf", "host-b"),
        (FILE, "host-b"),
    ]
    alias = next(row for row in api.get("/api/models", {"search": "Pulled"}).json()["data"])
    assert (alias["file_status"], alias["file_hosts"]) == ("local", ["host-b"])


def test_two_workers_sharing_one_hf_home_are_one_location(hf_env, tmp_path):
    home = tmp_path / "shared-volume"
    cache_file(home, "acme/A-GGUF", "a.Q4_K_M.gguf")

    with (
        celery_worker(extra_env=host_env(hf_env, home, "host-a")),
        celery_worker(extra_env=host_env(hf_env, home, "host-c")),
    ):
        wait_for(
            "both workers listed on the location",
            lambda: (
                Location.objects.filter().count() == 1 and sorted(Location.objects.get().hosts) == ["host-a", "host-c"]
            ),
        )
        wait_for("the start-up scans", lambda: ModelFile.objects.filter(present=True).exists())
        # A file added to the volume is found by whichever worker scans next, once, on the one location.
        cache_file(home, "acme/A-GGUF", "a2.Q4_K_M.gguf", content=tiny_gguf(seed=2))
        scan_cache_task.delay()
        wait_for("the rescan", lambda: ModelFile.objects.filter(filename="a2.Q4_K_M.gguf").exists(), seconds=30)

    assert Location.objects.count() == 1
    assert files() == {
        "a.Q4_K_M.gguf": ("shared: host-a, host-c", True),
        "a2.Q4_K_M.gguf": ("shared: host-a, host-c", True),
    }
