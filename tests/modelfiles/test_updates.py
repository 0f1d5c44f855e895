"""The update check against the test Hub: a ref that moved to other bytes is an update; "Update" pulls the new
commit and then moves the ref, so aliases following the ref load the new file and pinned ones keep the old."""

from __future__ import annotations

import hashlib

import pytest

from aliases.models import Alias
from config.audit.models import AuditEntry
from modelfiles import services
from modelfiles.cache import local_file, resolve_revision
from modelfiles.models import Download, ModelFile
from modelfiles.tasks import check_updates_task
from tests.modelfiles.hubfixtures import FILE, REPO, gguf_content, hf_env, hub, sha256_of

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

OTHER = "tiny-llama.Q8_0.gguf"
# Real GGUF headers: only files that can load get the generated alias these tests follow.
OLD = gguf_content(400_000, seed=1)
NEW = gguf_content(450_000, seed=2)


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list:
    """These tests run the download body themselves; record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task

    sent: list = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


def pull(filename: str = FILE, revision: str = "main") -> Download:
    download, _ = services.download_request(repo=REPO, filename=filename, revision=revision, by=None)
    done = services.download_run(download_id=download.pk)
    assert done.status == Download.Status.COMPLETED, done.error_message
    return done


def local(filename: str = FILE, snapshot: str | None = None) -> ModelFile:
    rows = ModelFile.objects.filter(repo=REPO, filename=filename, present=True)
    if snapshot:
        return rows.get(snapshot=snapshot)
    [row] = [row for row in rows if "main" in row.refs]
    return row


def test_a_moved_ref_with_changed_bytes_is_an_update_and_update_moves_the_ref(hub, hf_env, client_for, operator):
    old_commit = hub.add_repo(REPO, files={FILE: OLD, OTHER: gguf_content(2000, seed=3)})
    pull()
    pull(OTHER)
    old = local()
    follows = Alias.objects.create(alias="follows-main", repo=REPO, filename=FILE, snapshot="main")
    pinned = Alias.objects.create(alias="pinned", repo=REPO, filename=FILE, snapshot=old_commit)
    new_commit = hub.add_repo(REPO, files={FILE: NEW})  # main moves on; OTHER keeps its bytes

    client = client_for(operator)
    response = client.post("/api/modelfiles/check-updates")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["checked"] == 2 and answer["errors"] == []
    assert [(item["modelfile"]["id"], item["commit"]) for item in answer["updates"]] == [(old.pk, new_commit)]
    update = answer["updates"][0]["modelfile"]["update"]
    assert (update["ref"], update["size"], update["etag"]) == ("main", len(NEW), hashlib.sha256(NEW).hexdigest())
    page = client.get("/files/").content.decode()
    assert f"Update available: {new_commit[:8]}, 439.5 KB" in page
    assert f'action="/files/{old.pk}/update/"' in page

    response = client.post(f"/api/modelfiles/{old.pk}/update")
    assert response.status_code == 202, response.content
    assert response.json()["revision"] == new_commit
    # Until the new file is in, the ref still points where it did: nothing changes for the aliases.
    assert resolve_revision(REPO, "main") == old_commit
    services.download_run(download_id=response.json()["id"])

    assert resolve_revision(REPO, "main") == new_commit
    assert sha256_of(local_file(REPO, FILE, follows.snapshot)) == hashlib.sha256(NEW).hexdigest()
    assert sha256_of(local_file(REPO, FILE, pinned.snapshot)) == hashlib.sha256(OLD).hexdigest()
    # The file whose bytes did not change is linked into the new snapshot: the ref move takes nothing from it.
    assert local_file(REPO, OTHER, "main") is not None
    assert local(OTHER).snapshot == new_commit
    new = local()
    assert (new.snapshot, new.update_commit) == (new_commit, "")
    old.refresh_from_db()
    assert (old.present, old.refs, old.update_commit) == (True, [], "")
    generated = Alias.objects.get(source=Alias.Source.MODEL, filename=FILE)
    assert generated.snapshot == new_commit  # the generated alias follows main
    assert AuditEntry.objects.filter(kind="modelfile", action="ref_move").exists()
    assert AuditEntry.objects.filter(kind="modelfile", action="update", actor=operator).exists()

    # Checked again: nothing more to do.
    assert client.post("/api/modelfiles/check-updates").json()["updates"] == []


def test_a_moved_ref_with_the_same_bytes_is_no_update(hub, hf_env):
    hub.add_repo(REPO, files={FILE: OLD})
    pull()
    hub.add_repo(REPO, files={"README.md": b"new readme"})  # main moves, the GGUF file stays the same
    results = services.modelfile_check_updates()
    assert [result.update_available for result in results] == [False]
    assert local().update_checked_at is not None


def test_a_file_pinned_to_a_commit_is_not_checked(hub, hf_env):
    commit = hub.add_repo(REPO, files={FILE: OLD})
    pull(revision=commit)
    hub.add_repo(REPO, files={FILE: NEW})
    assert services.modelfile_check_updates() == []


def test_update_without_a_known_update_answers_409(hub, hf_env, client_for, operator, viewer):
    hub.add_repo(REPO, files={FILE: OLD})
    pull()
    modelfile = local()
    response = client_for(operator).post(f"/api/modelfiles/{modelfile.pk}/update")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "no_update")
    assert client_for(viewer).post(f"/api/modelfiles/{modelfile.pk}/update").status_code == 403
    assert client_for(viewer).post("/api/modelfiles/check-updates").status_code == 403
    page = client_for(operator).post(f"/files/{modelfile.pk}/update/", follow=True).content.decode()
    assert "No update is known" in page


def test_the_periodic_check_and_the_check_now_button_store_the_update(hub, hf_env, client_for, operator):
    hub.add_repo(REPO, files={FILE: OLD})
    pull()
    new_commit = hub.add_repo(REPO, files={FILE: NEW})
    assert check_updates_task() == 1
    assert local().update_commit == new_commit

    page = client_for(operator).post("/files/check-updates/", follow=True).content.decode()
    assert "1 update available (of 1 checked)." in page


def test_the_check_stops_at_an_unreachable_hub_and_says_so(hub, hf_env, monkeypatch):
    hub.add_repo(REPO, files={FILE: OLD})
    pull()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    [result] = services.modelfile_check_updates()
    assert not result.update_available and "Could not check for updates" in result.error
    assert "no connection" in result.error and "HF_ENDPOINT (http://127.0.0.1:9)" in result.error


def test_check_now_from_a_page_waits_only_the_page_timeout_and_promises_no_retry(
    hub, hf_env, monkeypatch, settings, client_for, operator, silent_endpoint
):
    hub.add_repo(REPO, files={FILE: OLD})
    pull()
    monkeypatch.setenv("HF_ENDPOINT", silent_endpoint)
    settings.HUB_PAGE_TIMEOUT_SECONDS = 1
    page = client_for(operator).post("/files/check-updates/", follow=True).content.decode()
    assert "1 file could not be checked" in page
    assert "no answer within 1 s" in page  # the page's timeout, not the workers' 15 s
    assert f"HF_ENDPOINT ({silent_endpoint})" in page and "HF_TOKEN" in page
    assert "will try again" not in page and "the periodic check runs every 1 d" in page
    answer = client_for(operator).post("/api/modelfiles/check-updates").json()
    assert "no answer within 1 s" in answer["errors"][0]["message"]


def test_when_two_files_changed_updating_one_flags_the_other_which_then_follows(hub, hf_env):
    hub.add_repo(REPO, files={FILE: OLD, OTHER: gguf_content(2000, seed=3)})
    pull()
    pull(OTHER)
    new_other = gguf_content(2400, seed=4)
    new_commit = hub.add_repo(REPO, files={FILE: NEW, OTHER: new_other})
    assert [r.update_available for r in services.modelfile_check_updates()] == [True, True]
    download, _ = services.modelfile_update(modelfile=local(), by=None)
    services.download_run(download_id=download.pk)
    assert resolve_revision(REPO, "main") == new_commit
    # The other file has no copy at the new commit yet: it still offers its update, which brings it along.
    stale_other = ModelFile.objects.get(repo=REPO, filename=OTHER, present=True)
    assert (stale_other.refs, stale_other.update_commit) == ([], new_commit)
    download, _ = services.modelfile_update(modelfile=stale_other, by=None)
    services.download_run(download_id=download.pk)
    assert sha256_of(local_file(REPO, OTHER, "main")) == hashlib.sha256(new_other).hexdigest()
    stale_other.refresh_from_db()
    assert stale_other.update_commit == ""


def test_a_tag_that_moved_is_an_update_and_the_tag_moves(hub, hf_env):
    hub.add_repo(REPO, files={FILE: OLD})
    hub.create_tag(REPO, "v1")
    pull(revision="v1")
    new_commit = hub.add_repo(REPO, files={FILE: NEW})
    hub.create_tag(REPO, "v1", revision=new_commit)  # the tag is moved on the Hub
    [result] = services.modelfile_check_updates()
    assert (result.modelfile.update_ref, result.modelfile.update_commit) == ("v1", new_commit)
    download, _ = services.modelfile_update(modelfile=result.modelfile, by=None)
    services.download_run(download_id=download.pk)
    assert resolve_revision(REPO, "v1") == new_commit
    assert sha256_of(local_file(REPO, FILE, "v1")) == hashlib.sha256(NEW).hexdigest()
