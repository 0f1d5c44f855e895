"""Files per host (issue 8, item 10), in one process: the cache a scan reads is switched between two HF_HOMEs, as
two workers on two hosts would read theirs. tests/modelfiles/test_hosts_workers.py runs real workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from aliases.file_status import alias_file
from aliases.models import Alias
from modelfiles import location, services
from modelfiles.models import Download, Location, ModelFile
from tests.gguf_files import tiny_gguf
from tests.modelfiles import cache_file, make_modelfile
from tests.workers import BASE_DIR

pytestmark = pytest.mark.django_db

FILES_URL = "/api/modelfiles"
PULL_URL = "/api/modelfiles/pull"


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    """Two caches, host-a's and host-b's; `use(name)` points this process at one of them."""
    homes = {"host-a": tmp_path / "a", "host-b": tmp_path / "b"}

    def use(host: str, home: Path | None = None) -> Path:
        home = home or homes[host]
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("MODELDESK_HOST", host)
        return home

    use.homes = homes  # type: ignore[attr-defined]
    return use


def rows() -> dict[str, tuple[str, bool]]:
    return {row.filename: (row.location.label, row.present) for row in ModelFile.objects.select_related("location")}


def start_worker(host: str) -> Location:
    """What a worker does on start, without the worker: its host is listed on its cache's location, then it scans."""
    here = services.location_register_worker(host=host)
    services.modelfile_sync()
    return here


def test_two_caches_are_two_locations_and_one_cache_is_one_whatever_the_host_name(hosts, tmp_path):
    hosts("host-a")
    first = location.cache_location()
    assert location.cache_location() == first  # read back from the marker, not made again
    marker = json.loads((tmp_path / "a" / "hub" / ".locks" / location.MARKER).read_text())
    assert marker == {"key": first.key, "created_by": "host-a"}

    hosts("host-b")
    assert location.cache_location().key != first.key
    hosts("host-c", tmp_path / "a")  # another machine mounting host-a's cache
    assert location.cache_location().key == first.key


def test_processes_racing_to_mark_a_new_cache_all_read_the_one_key_that_won(hosts, tmp_path):
    hosts("host-a", tmp_path / "fresh")
    code = "from modelfiles import location; print(location.cache_location().key)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BASE_DIR,
        )
        for _ in range(6)
    ]
    keys = {run.communicate(timeout=60)[0].strip() for run in runs}
    assert len(keys) == 1 and keys == {location.cache_location().key}
    assert [path.name for path in (tmp_path / "fresh" / "hub" / ".locks").iterdir()] == [location.MARKER]


def test_a_hosts_scan_never_marks_another_hosts_files_gone(hosts):
    cache_file(hosts("host-a"), "acme/A-GGUF", "a.Q4_K_M.gguf")
    location_a = start_worker("host-a")
    cache_file(hosts("host-b"), "acme/B-GGUF", "b.Q4_K_M.gguf", content=tiny_gguf(seed=1))
    location_b = start_worker("host-b")
    assert location_a.pk != location_b.pk

    for host in ("host-a", "host-b", "host-a"):
        hosts(host)
        counts = services.modelfile_sync()
        assert counts["removed"] == 0

    assert rows() == {"a.Q4_K_M.gguf": ("host-a", True), "b.Q4_K_M.gguf": ("host-b", True)}
    # Each host's generated alias stays while its own host has the file.
    generated = Alias.objects.filter(source=Alias.Source.MODEL)
    assert sorted(generated.values_list("alias", flat=True)) == ["acme/A-GGUF:Q4_K_M", "acme/B-GGUF:Q4_K_M"]
    # The header step read only this cache's files: both are readable, not "cannot be opened" from the other disk.
    assert set(ModelFile.objects.values_list("state", flat=True)) == {ModelFile.State.OK}


def test_a_file_deleted_on_one_host_goes_from_that_host_only(hosts):
    link_a = cache_file(hosts("host-a"), "acme/Same-GGUF", "same.Q4_K_M.gguf")
    start_worker("host-a")
    cache_file(hosts("host-b"), "acme/Same-GGUF", "same.Q4_K_M.gguf")
    start_worker("host-b")
    assert ModelFile.objects.filter(filename="same.Q4_K_M.gguf", present=True).count() == 2

    link_a.unlink()
    hosts("host-a")
    assert services.modelfile_sync()["removed"] == 1

    present = ModelFile.objects.filter(present=True).select_related("location")
    assert [row.location.label for row in present] == ["host-b"]
    alias = Alias.objects.get(alias="acme/Same-GGUF:Q4_K_M")  # host-b still has it: the alias stays
    found = alias_file(alias)
    assert (found.status, found.hosts) == ("local", ["host-b"])


def test_rows_from_before_hosts_are_adopted_by_the_first_scan(hosts):
    home = hosts("host-a")
    cache_file(home, "acme/Old-GGUF", "old.Q4_K_M.gguf")
    services.modelfile_sync()
    ModelFile.objects.update(location=None)  # as the migration leaves existing rows
    legacy_gone = make_modelfile(repo="acme/Old-GGUF", filename="elsewhere.gguf")

    counts = services.modelfile_sync()

    here = Location.objects.get(key=location.cache_location().key)
    adopted = ModelFile.objects.get(filename="old.Q4_K_M.gguf")
    assert (adopted.location_id, adopted.present, counts["created"]) == (here.pk, True, 0)
    legacy_gone.refresh_from_db()
    assert not legacy_gone.present  # not in this cache: gone, as a scan always said of files not found


def test_two_hosts_sharing_a_cache_are_one_location_with_both_names(hosts, tmp_path):
    cache_file(hosts("host-a"), "acme/A-GGUF", "a.Q4_K_M.gguf")
    start_worker("host-a")
    hosts("host-c", tmp_path / "a")
    start_worker("host-c")

    assert Location.objects.count() == 1
    row = ModelFile.objects.select_related("location").get()
    assert row.location.label == "shared: host-a, host-c"


def test_a_worker_host_that_moves_to_another_cache_is_listed_there_only(hosts, tmp_path):
    hosts("host-a")
    first = start_worker("host-a")
    hosts("host-a", tmp_path / "elsewhere")
    second = start_worker("host-a")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.hosts, second.hosts) == ([], ["host-a"])


def test_the_api_says_where_each_file_is_and_filters_by_host(hosts, viewer_client):
    cache_file(hosts("host-a"), "acme/A-GGUF", "a.Q4_K_M.gguf")
    location_a = start_worker("host-a")
    cache_file(hosts("host-b"), "acme/B-GGUF", "b.Q4_K_M.gguf", content=tiny_gguf(seed=1))
    start_worker("host-b")

    every = viewer_client.get(FILES_URL).json()["data"]
    assert {(row["filename"], row["host"]) for row in every} == {
        ("a.Q4_K_M.gguf", "host-a"),
        ("b.Q4_K_M.gguf", "host-b"),
    }
    only_b = viewer_client.get(FILES_URL, {"host": "host-b"}).json()
    assert [row["filename"] for row in only_b["data"]] == ["b.Q4_K_M.gguf"] and only_b["total"] == 1
    by_key = viewer_client.get(FILES_URL, {"host": location_a.key}).json()["data"]
    assert [(row["filename"], row["location"]) for row in by_key] == [("a.Q4_K_M.gguf", location_a.key)]
    assert viewer_client.get(FILES_URL, {"host": "nowhere"}).json()["total"] == 0

    aliases = viewer_client.get("/api/models", {"search": "B-GGUF"}).json()["data"]
    alias = next(row for row in aliases if row["alias"] == "acme/B-GGUF:Q4_K_M")
    assert (alias["file_status"], alias["file_hosts"]) == ("local", ["host-b"])


def test_the_pages_show_the_host_of_each_file(hosts, viewer_client):
    cache_file(hosts("host-a"), "acme/A-GGUF", "a.Q4_K_M.gguf")
    start_worker("host-a")
    cache_file(hosts("host-b"), "acme/B-GGUF", "b.Q4_K_M.gguf", content=tiny_gguf(seed=1))
    start_worker("host-b")

    page = viewer_client.get("/files/", {"host": "host-a"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "a.Q4_K_M.gguf" in body and "b.Q4_K_M.gguf" not in body
    assert '<option value="host-b">host-b</option>' in body  # the host filter offers both hosts
    row = ModelFile.objects.get(filename="b.Q4_K_M.gguf")
    detail = viewer_client.get(f"/files/{row.pk}/").content.decode()
    assert 'data-testid="file-host">host-b' in detail


def test_a_pull_aimed_at_a_host_goes_to_its_queue_and_is_one_active_download_per_host(
    hosts, operator_client, monkeypatch, django_capture_on_commit_callbacks
):
    from modelfiles.tasks import download_task

    sent: list[tuple] = []
    monkeypatch.setattr(download_task, "delay", lambda download_id: sent.append((download_id, None)))
    monkeypatch.setattr(download_task, "apply_async", lambda args, queue: sent.append((args[0], queue)))
    hosts("host-a")
    start_worker("host-a")
    hosts("host-b")
    start_worker("host-b")
    hosts("web", hosts.homes["host-a"].parent / "web")  # the web process has a cache of its own
    pull = {"repo": "acme/New-GGUF", "filename": "new.Q4_K_M.gguf"}

    with django_capture_on_commit_callbacks(execute=True):
        to_b = operator_client.post(PULL_URL, {**pull, "host": "host-b"}, content_type="application/json")
        anywhere = operator_client.post(PULL_URL, pull, content_type="application/json")
        again = operator_client.post(PULL_URL, {**pull, "host": "host-b"}, content_type="application/json")

    assert (to_b.status_code, anywhere.status_code, again.status_code) == (201, 201, 200)
    assert to_b.json()["host"] == "host-b" and anywhere.json()["host"] is None
    assert again.json()["id"] == to_b.json()["id"]
    assert sent == [(to_b.json()["id"], "host.host-b"), (anywhere.json()["id"], None)]
    assert Download.objects.get(pk=to_b.json()["id"]).host == "host-b"


def test_a_pull_aimed_at_an_unknown_host_is_refused_naming_the_known_ones(hosts, operator_client):
    hosts("host-a")
    start_worker("host-a")
    response = operator_client.post(
        PULL_URL, {"repo": "acme/New-GGUF", "filename": "new.gguf", "host": "host-z"}, content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "host" and "host-a" in error["message"]
    assert not Download.objects.exists()
    with pytest.raises(ValidationError):
        services.pull_target(host="host-z")


def test_a_pull_aimed_at_a_host_that_has_the_file_is_already_local_there(hosts, operator_client):
    cache_file(hosts("host-b"), "acme/B-GGUF", "b.Q4_K_M.gguf")
    start_worker("host-b")
    hosts("host-a")  # the web process reads another cache
    start_worker("host-a")

    response = operator_client.post(
        PULL_URL,
        {"repo": "acme/B-GGUF", "filename": "b.Q4_K_M.gguf", "host": "host-b"},
        content_type="application/json",
    )
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["error"]["code"] == "already_local" and body["modelfile"]["host"] == "host-b"


def test_deleting_a_file_of_another_hosts_cache_is_refused(hosts, client_for, admin_user):
    cache_file(hosts("host-b"), "acme/B-GGUF", "b.Q4_K_M.gguf")
    start_worker("host-b")
    hosts("host-a")
    row = ModelFile.objects.get()

    response = client_for(admin_user).delete(f"{FILES_URL}/{row.pk}")

    assert response.status_code == 409
    assert "host-b" in response.json()["error"]["message"]
    assert (hosts.homes["host-b"] / "hub" / "models--acme--B-GGUF" / "snapshots").exists()
    row.refresh_from_db()
    assert row.present


def test_rescan_asks_the_workers_of_every_other_location_to_scan_theirs(hosts, client_for, operator, monkeypatch):
    from modelfiles.tasks import scan_cache_task

    sent: list[tuple] = []
    monkeypatch.setattr(scan_cache_task, "apply_async", lambda args, queue, expires: sent.append((args, queue)))
    hosts("host-b")
    location_b = start_worker("host-b")
    hosts("web", hosts.homes["host-b"].parent / "web")
    services.location_current()  # the web machine's own cache: no worker reads it, so nobody is asked there

    response = client_for(operator).post("/files/rescan/", follow=True)

    assert sent == [((False,), f"location.{location_b.key}")]
    assert "The other hosts (1) rescan theirs in the background." in response.content.decode()


def test_the_pull_form_offers_the_hosts_once_there_are_several_and_aims_the_pull(
    hosts, operator_client, django_capture_on_commit_callbacks, monkeypatch
):
    from modelfiles.tasks import download_task

    sent: list[tuple] = []
    monkeypatch.setattr(download_task, "apply_async", lambda args, queue: sent.append((args[0], queue)))
    hosts("host-a")
    start_worker("host-a")
    assert 'name="host"' not in operator_client.get("/files/pull/").content.decode()  # one host: nothing to choose
    hosts("host-b")
    start_worker("host-b")
    form = operator_client.get("/files/pull/").content.decode()
    assert '<option value="host-b">host-b</option>' in form

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            "/files/pull/", {"repo": "acme/New-GGUF", "filename": "new.Q4_K_M.gguf", "revision": "", "host": "host-b"}
        )

    assert response.status_code == 302
    download = Download.objects.get()
    assert download.host == "host-b" and sent == [(str(download.pk), "host.host-b")]
    assert ">host-b<" in operator_client.get("/files/downloads/").content.decode()


def test_an_alias_page_names_the_hosts_it_loads_on(hosts, viewer_client, alias_factory):
    cache_file(hosts("host-a"), "acme/Both-GGUF", "both.Q4_K_M.gguf")
    start_worker("host-a")
    cache_file(hosts("host-b"), "acme/Both-GGUF", "both.Q4_K_M.gguf")
    start_worker("host-b")
    alias_factory(alias="both", repo="acme/Both-GGUF", filename="both.Q4_K_M.gguf", snapshot="main")

    page = viewer_client.get("/aliases/both/").content.decode()

    assert 'data-testid="file-hosts"' in page
    assert ">host-a</span>" in page and ">host-b</span>" in page
    found = alias_file(Alias.objects.get(alias="both"))
    assert (found.status, found.hosts) == ("local", ["host-a", "host-b"])
