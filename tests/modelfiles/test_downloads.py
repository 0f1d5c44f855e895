"""The downloader and the download services against a real Hub-compatible HTTP server, fault by fault.

These run the download in this process (download_run, exactly what the Celery task calls); the end-to-end tests
with a real worker process are in test_worker_e2e.py.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from huggingface_hub import hf_hub_download, scan_cache_dir, try_to_load_from_cache

from aliases.models import Alias
from modelfiles import downloader, services
from modelfiles.cache import PARTIAL_SUFFIX, RepoPaths, local_file
from modelfiles.models import Download, ModelFile
from tests.modelfiles.hubfixtures import (
    FILE,
    REPO,
    gguf_content,
    hf_env,
    hub,
    hub_cache,
    pseudo_random,
    sha256_of,
    start_run,
    wait_for,
)

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[str]:
    """These tests run the task body themselves; record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


SIZE = 3 * 1024 * 1024 + 123


def request(repo: str = REPO, filename: str = FILE, revision: str = "main", *, unchecked: bool = False) -> Download:
    """Queue a pull. `unchecked`: with the Hub unreachable for the pre-flight, so the row is queued whatever the
    Hub would say (as when it was down at request time) and the worker meets the Hub's answer itself."""
    endpoint = os.environ["HF_ENDPOINT"]
    if unchecked:
        os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
    try:
        download, created = services.download_request(repo=repo, filename=filename, revision=revision, by=None)
    finally:
        os.environ["HF_ENDPOINT"] = endpoint
    assert created
    return download


def run(download: Download) -> Download:
    result = services.download_run(download_id=download.pk, worker="test")
    assert result is not None
    return result


def test_pull_lands_in_the_standard_cache_where_huggingface_hub_finds_it(hub, hf_env, enqueued):
    content = gguf_content(SIZE)
    commit = hub.add_repo(REPO, files={FILE: content, "README.md": b"# tiny"})
    download = request()
    assert enqueued == [str(download.pk)]  # sent once the row was committed
    download = run(download)

    assert download.status == Download.Status.COMPLETED, download.error_message
    assert (download.commit, download.bytes_done, download.bytes_total) == (commit, SIZE, SIZE)
    cache_dir = hub_cache(hf_env)
    path = try_to_load_from_cache(REPO, FILE, cache_dir=cache_dir)
    assert path is not None and Path(path).read_bytes() == content
    assert hf_hub_download(REPO, FILE, cache_dir=cache_dir, local_files_only=True) == path
    assert (cache_dir / "models--acme--tiny-llama-GGUF" / "refs" / "main").read_text() == commit
    [cached] = scan_cache_dir(cache_dir).repos
    assert [f.file_name for r in cached.revisions for f in r.files] == [FILE]
    # No leftovers: the partial file became the blob.
    assert not list((cache_dir / "models--acme--tiny-llama-GGUF" / "blobs").glob(f"*{PARTIAL_SUFFIX}"))
    # The scanner ran after the download: the file is listed and has its read-only alias.
    row = ModelFile.objects.get(repo=REPO, filename=FILE)
    assert (row.snapshot, row.size, row.present) == (commit, SIZE, True)
    alias = Alias.objects.get(alias=f"{REPO}:Q4_K_M")
    assert (alias.source, alias.filename, alias.snapshot) == ("model", FILE, commit)


def test_a_file_already_local_is_reported_without_asking_the_hub(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    run(request())
    hub.clear_log()
    with pytest.raises(services.AlreadyLocal):
        services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    assert hub.requests == []


def test_dropped_connection_is_retried_and_resumed_with_a_range_request(hub, hf_env):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(drop_after_bytes=1_000_000, times=1)
    download = run(request())

    assert download.status == Download.Status.COMPLETED, download.error_message
    ranges = hub.range_requests(FILE)
    assert ranges and ranges[0].startswith("bytes=") and int(ranges[0][6:].rstrip("-")) > 0
    # Bytes fetched twice: none.
    assert hub.bytes_sent_for(FILE) == SIZE
    assert sha256_of(local_file(REPO, FILE, "main")) == sha256_of_bytes(content)


def sha256_of_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fault", [{"status_503": 2}, {"status_429": 1}])
def test_server_errors_and_rate_limits_are_retried(hub, hf_env, fault):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.faults.set(**fault)
    download = run(request())
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.attempts > 1


def test_a_stall_is_detected_and_resumed(hub, hf_env, monkeypatch):
    monkeypatch.setattr(downloader, "STALL_SECONDS", 1.5)
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.faults.set(stall_after_bytes=500_000, stall_seconds=30, times=1)
    started = time.monotonic()
    download = run(request())
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert time.monotonic() - started < 20
    assert hub.range_requests(FILE)


def test_corrupted_bytes_fail_with_a_checksum_message_and_nothing_is_visible(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.faults.set(corrupt=True)
    download = run(request())

    assert download.status == Download.Status.FAILED
    assert download.error_code == "checksum_mismatch"
    assert "sha256" in download.error_message
    assert download.attempts == 1
    assert local_file(REPO, FILE, "main") is None
    blobs = RepoPaths.for_repo(REPO).blobs
    assert list(blobs.iterdir()) == []
    assert not ModelFile.objects.exists()


@pytest.mark.parametrize(
    ("setup", "repo", "filename", "revision", "code", "advice"),
    [
        ("gated", "acme/gated-GGUF", FILE, "main", "gated_repo", "accept its licence"),
        ("none", "acme/missing-GGUF", FILE, "main", "repo_not_found", "HF_TOKEN"),
        ("plain", REPO, "absent.Q8_0.gguf", "main", "file_not_found", "Pick a file"),
        ("plain", REPO, FILE, "no-such-branch", "revision_not_found", "branch, tag or commit"),
    ],
)
def test_permanent_errors_fail_once_with_a_message_that_says_what_to_do(
    hub, hf_env, setup, repo, filename, revision, code, advice
):
    if setup == "gated":
        hub.add_repo(repo, files={FILE: pseudo_random(1000)}, gated=True)
    elif setup == "plain":
        hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    download = run(request(repo, filename, revision, unchecked=True))

    assert download.status == Download.Status.FAILED
    assert download.error_code == code
    assert advice in download.error_message
    assert download.attempts == 1
    assert len([r for r in hub.requests if r.method == "HEAD"]) == 1
    assert not [r for r in hub.requests if r.method == "GET" and r.route in ("resolve", "cdn")]


def test_gated_repo_is_served_with_a_granted_token(hub, hf_env, monkeypatch):
    hub.add_repo("acme/gated-GGUF", files={FILE: pseudo_random(1000)}, gated=True, granted_tokens={"hf_granted"})
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    download = run(request("acme/gated-GGUF"))
    assert download.status == Download.Status.COMPLETED, download.error_message


def test_twenty_concurrent_identical_requests_make_one_download_and_one_transfer(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def ask():
        from django.db import connection

        try:
            barrier.wait()
            download, created = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
            results.append((str(download.pk), created))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Download.objects.count() == 1
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    download = Download.objects.get()
    run(download)
    # A second run of the same task (a redelivered message) does nothing.
    assert services.download_run(download_id=download.pk, worker="again") is None
    assert len(hub.requests_for(FILE, "GET")) == 1


def _mount_small_disk(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def small_disk(hf_env, monkeypatch):
    """HF_HOME on a 2 MiB filesystem of its own: a real "disk full", not a mocked one."""
    home = Path(hf_env["HF_HOME"])
    if not _mount_small_disk(home, "2m"):
        pytest.fail("mounting a tmpfs needs root; the suite runs as root in CI")
    monkeypatch.setattr(downloader, "DISK_RESERVE", 0)
    yield home
    subprocess.run(["umount", "-l", str(home)], check=False)


def test_not_enough_disk_space_fails_before_any_byte_is_fetched(hub, hf_env, small_disk):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    download = run(request(unchecked=True))  # the pre-flight would refuse it (test_preflight.py)
    assert download.status == Download.Status.FAILED
    assert download.error_code == "disk_full"
    assert "need 3.0 MB" in download.error_message and "free 2.0 MB" in download.error_message
    assert hub.requests_for(FILE, "GET") == []


def test_a_disk_that_fills_up_mid_way_fails_cleanly(hub, hf_env, small_disk):
    size = 1_500_000
    hub.add_repo(REPO, files={FILE: pseudo_random(size)})
    hub.faults.set(stall_after_bytes=200_000, stall_seconds=2, times=1)
    download = request()
    thread = start_run(download)
    # While the Hub holds the transfer, another program fills the disk.
    partial = RepoPaths.for_repo(REPO).partial(sha256_of_bytes(pseudo_random(size)))
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 200_000)
    ballast = small_disk / "ballast"
    with ballast.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    thread.join(30)
    download.refresh_from_db()
    assert download.status == Download.Status.FAILED
    assert download.error_code == "disk_full"
    assert "Free some space" in download.error_message
    assert local_file(REPO, FILE, "main") is None
    assert not list(RepoPaths.for_repo(REPO).blobs.glob(f"*{PARTIAL_SUFFIX}"))


def test_cancel_stops_the_transfer_deletes_the_partial_file_and_retry_starts_over(hub, hf_env):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=600_000, times=1)
    download = request()
    thread = start_run(download)
    partial = RepoPaths.for_repo(REPO).partial(sha256_of_bytes(content))
    wait_for(lambda: Download.objects.get(pk=download.pk).bytes_done > 0 and partial.exists())
    assert services.download_cancel(download=download, by=None)
    cancelled_at = time.monotonic()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 3
    download.refresh_from_db()
    assert download.status == Download.Status.CANCELLED
    assert download.error_message == "Cancelled by the system; the partial file was deleted."
    # The worker held the file while it was stopping: it deleted it on its way out.
    assert not partial.exists()
    assert not list(RepoPaths.for_repo(REPO).blobs.glob(f"*{PARTIAL_SUFFIX}"))

    download, requeued = services.download_retry(download=download, by=None)
    assert requeued and download.status == Download.Status.QUEUED
    assert (download.bytes_done, download.attempts) == (0, 0)
    download = run(download)
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert hub.range_requests(FILE) == []  # started over: nothing was kept to continue
    assert sha256_of(local_file(REPO, FILE, "main")) == sha256_of_bytes(content)


def test_a_download_whose_heartbeat_stopped_is_requeued(hub, hf_env, enqueued):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    download = request()
    stale = timezone.now() - timedelta(seconds=services.STALE_SECONDS + 5)
    Download.objects.filter(pk=download.pk).update(status=Download.Status.DOWNLOADING, updated_at=stale, worker="gone")
    fresh = request(filename="other.Q8_0.gguf", unchecked=True)
    Download.objects.filter(pk=fresh.pk).update(status=Download.Status.DOWNLOADING, worker="alive")

    enqueued.clear()
    assert services.download_requeue_stale() == 1
    assert enqueued == [str(download.pk)]
    download.refresh_from_db()
    fresh.refresh_from_db()
    assert download.status == Download.Status.QUEUED
    assert fresh.status == Download.Status.DOWNLOADING
    # The re-queued download then runs to the end like any other.
    assert run(download).status == Download.Status.COMPLETED


def test_a_restarting_worker_takes_back_what_it_held(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    download = request()
    Download.objects.filter(pk=download.pk).update(status=Download.Status.DOWNLOADING, worker="celery@box")
    assert services.download_requeue_stale(worker="celery@elsewhere") == 0
    assert services.download_requeue_stale(worker="celery@box") == 1


def test_scanner_follows_files_added_and_removed_by_other_tools(hub, hf_env):
    hub.add_repo(REPO, files={FILE: gguf_content(2000), "other.Q8_0.gguf": pseudo_random(3000)})
    cache_dir = hub_cache(hf_env)
    hf_hub_download(REPO, FILE, cache_dir=cache_dir, endpoint=hub.endpoint)  # another tool
    counts = services.modelfile_sync()
    assert counts == {"created": 1, "updated": 0, "removed": 0, "present": 1, "skipped": []}
    assert Alias.objects.filter(source="model").count() == 1

    local_file(REPO, FILE, "main").unlink()  # deleted outside ModelDesk
    counts = services.modelfile_sync()
    assert counts["removed"] == 1
    assert not ModelFile.objects.filter(present=True).exists()
    assert not Alias.objects.filter(source="model").exists()


def test_a_cdn_redirect_is_followed_without_sending_the_token_there(hub, hf_env, monkeypatch):
    content = pseudo_random(SIZE)
    hub.add_repo("acme/private-GGUF", files={FILE: content}, private=True, granted_tokens={"hf_secret_token"})
    hub.cdn_redirect = True
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    download = run(request("acme/private-GGUF"))
    assert download.status == Download.Status.COMPLETED, download.error_message
    cdn_gets = [r for r in hub.requests if r.server == "cdn" and r.method == "GET"]
    assert cdn_gets and all("authorization" not in r.headers for r in cdn_gets)
    assert sha256_of(local_file("acme/private-GGUF", FILE, "main")) == sha256_of_bytes(content)


def test_the_token_never_appears_in_what_users_see(hub, hf_env, monkeypatch, client_for, operator, caplog):
    hub.add_repo("acme/gated-GGUF", files={FILE: pseudo_random(1000)}, gated=True)
    hub.tokens.add("hf_not_granted_token")
    monkeypatch.setenv("HF_TOKEN", "hf_not_granted_token")
    download = run(request("acme/gated-GGUF", unchecked=True))
    assert download.error_code == "gated_repo"
    client = client_for(operator)
    seen = [
        download.error_message,
        client.get(f"/api/modelfiles/status/{download.pk}").content.decode(),
        client.get("/files/downloads/").content.decode(),
        caplog.text,
    ]
    assert all("hf_not_granted_token" not in text for text in seen)
