"""Verification: a cached file re-hashed against its blob name (sha256 or git blob sha1); a mismatch is corrupt."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from config.audit.models import AuditEntry
from modelfiles import services
from modelfiles.cache import local_file
from modelfiles.models import Download, ModelFile, Verification
from tests.modelfiles import COMMIT, cache_file
from tests.modelfiles.hubfixtures import FILE, REPO, gguf_content, hf_env, hub, pseudo_random, sha256_of
from tests.workers import celery_worker

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = gguf_content(300_000)  # a real header: the file reads as ok before anything is verified


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list:
    """Tests that run the task body themselves record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task, verify_task

    sent: list = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    monkeypatch.setattr(verify_task, "delay", sent.append)
    # A file of a known location goes to that location's queue (apply_async with a queue).
    monkeypatch.setattr(verify_task, "apply_async", lambda args, **options: sent.append(args[0]))
    return sent


def flip_a_byte(path: Path, offset: int = 1000) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def cached(hf_home: Path, content: bytes = CONTENT) -> ModelFile:
    cache_file(hf_home, REPO, FILE, content=content)
    services.modelfile_sync()
    return ModelFile.objects.get(repo=REPO, filename=FILE)


def verify(modelfile: ModelFile) -> Verification:
    verification, created = services.verification_request(modelfile=modelfile, by=None)
    assert created
    done = services.verification_run(verification_id=verification.pk)
    assert done is not None
    return done


def test_a_whole_file_verifies_ok_against_its_sha256(hf_home):
    modelfile = cached(hf_home)
    done = verify(modelfile)
    assert (done.status, done.algorithm, done.bytes_done, done.bytes_total) == ("ok", "sha256", len(CONTENT),
                                                                                 len(CONTENT))  # fmt: skip
    assert done.actual == done.expected == hashlib.sha256(CONTENT).hexdigest()
    modelfile.refresh_from_db()
    assert modelfile.state == "ok"


def test_a_flipped_byte_marks_the_file_corrupt_and_is_audited(hf_home):
    modelfile = cached(hf_home)
    flip_a_byte(local_file(REPO, FILE, "main"))
    done = verify(modelfile)
    assert done.status == "corrupt"
    assert done.expected == modelfile.etag and done.actual != done.expected
    modelfile.refresh_from_db()
    assert modelfile.state == "corrupt"
    entry = AuditEntry.objects.get(kind="modelfile", action="corrupt")
    assert entry.after["state"] == "corrupt" and entry.object_id == str(modelfile.pk)


def test_a_blob_named_by_its_git_sha1_is_checked_with_the_git_hash(hf_home):
    content = b"GGUF small file kept in git"
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    root = hf_home / "hub" / ("models--" + REPO.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / git_sha1).write_bytes(content)
    (root / "snapshots" / COMMIT).mkdir(parents=True)
    os.symlink(f"../../blobs/{git_sha1}", root / "snapshots" / COMMIT / FILE)
    services.modelfile_sync()
    modelfile = ModelFile.objects.get()
    done = verify(modelfile)
    assert (done.status, done.algorithm, done.actual) == ("ok", "git-sha1", git_sha1)

    flip_a_byte(root / "blobs" / git_sha1, offset=3)
    modelfile.refresh_from_db()
    assert verify(modelfile).status == "corrupt"


def test_the_verify_command_reports_each_file_and_fails_on_a_corrupt_one(hf_home):
    cached(hf_home)
    out = io.StringIO()
    call_command("verify", stdout=out)
    assert f"{REPO}/{FILE}@{COMMIT[:8]}: ok (sha256" in out.getvalue()
    assert "All 1 file(s) verified." in out.getvalue()

    flip_a_byte(local_file(REPO, FILE, "main"))
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 file"):
        call_command("verify", "--repo", REPO, stdout=out)
    assert "CORRUPT" in out.getvalue() and "% of" in out.getvalue()  # the progress line, then the verdict
    assert ModelFile.objects.get().state == "corrupt"


def test_the_verify_command_with_another_repo_verifies_nothing(hf_home):
    cached(hf_home)
    out = io.StringIO()
    call_command("verify", "--repo", "acme/other-GGUF", stdout=out)
    assert "No model files to verify." in out.getvalue()
    assert not Verification.objects.exists()


def test_a_second_press_while_one_runs_returns_the_running_one(hf_home):
    modelfile = cached(hf_home)
    first, created = services.verification_request(modelfile=modelfile, by=None)
    second, created_again = services.verification_request(modelfile=modelfile, by=None)
    assert created and not created_again and first.pk == second.pk


def test_the_verify_api_runs_on_a_real_worker_and_its_state_can_be_read(hf_home, client_for, operator, monkeypatch):
    from modelfiles.tasks import verify_task

    monkeypatch.undo()  # the real broker this time
    monkeypatch.setenv("HF_HOME", str(hf_home))
    assert "delay" not in vars(verify_task)
    modelfile = cached(hf_home)
    flip_a_byte(local_file(REPO, FILE, "main"))
    client = client_for(operator)
    with celery_worker(extra_env={"HF_HOME": str(hf_home)}):
        response = client.post(f"/api/modelfiles/{modelfile.pk}/verify")
        assert response.status_code == 202, response.content
        assert response.json()["status"] in ("queued", "running", "corrupt")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = client.get(f"/api/modelfiles/{modelfile.pk}/verify").json()
            state = answer["verification"]
            if state["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
    assert (state["status"], state["algorithm"], state["bytes_done"]) == ("corrupt", "sha256", len(CONTENT))
    assert (answer["state"], state["percent"]) == ("corrupt", 100.0)
    listed = client.get("/api/modelfiles").json()["data"][0]
    assert (listed["id"], listed["state"]) == (modelfile.pk, "corrupt")


def test_verify_api_answers_404_for_no_file_and_403_for_viewers_who_may_read_the_state(hf_home, client_for, viewer,
                                                                                   operator):  # fmt: skip
    modelfile = cached(hf_home)
    assert client_for(operator).get("/api/modelfiles/999999/verify").status_code == 404
    assert client_for(operator).get("/api/modelfiles/x/verify").status_code == 404
    assert client_for(operator).get("/api/modelfiles/99999999999999999999999/verify").status_code == 404
    response = client_for(viewer).get(f"/api/modelfiles/{modelfile.pk}/verify")
    assert response.json() == {"modelfile": modelfile.pk, "state": "ok", "verification": None}
    assert client_for(viewer).post(f"/api/modelfiles/{modelfile.pk}/verify").status_code == 403


def test_pressing_verify_on_the_list_leads_to_its_progress_page(hf_home, client_for, operator, viewer):
    modelfile = cached(hf_home)
    page = client_for(operator).get("/files/")
    assert f'action="/files/{modelfile.pk}/verify/"' in page.content.decode()
    assert f'action="/files/{modelfile.pk}/verify/"' not in client_for(viewer).get("/files/").content.decode()

    response = client_for(operator).post(f"/files/{modelfile.pk}/verify/")
    assert response.status_code == 302 and response.url == f"/files/{modelfile.pk}/verification/"
    running = client_for(operator).get(response.url, headers={"HX-Request": "true"}).content.decode()
    assert 'hx-trigger="every 1s"' in running and "queued" in running

    services.verification_run(verification_id=Verification.objects.get().pk)
    finished = client_for(operator).get(response.url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in finished and "match their sha256" in finished
    assert "verified" in client_for(viewer).get("/files/").content.decode()
    assert client_for(viewer).post(f"/files/{modelfile.pk}/verify/").status_code == 403


def test_a_corrupt_file_is_shown_and_re_pulled_in_one_click(hub, hf_env, client_for, operator):
    content = pseudo_random(500_000)
    hub.add_repo(REPO, files={FILE: content})
    download, _ = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    services.download_run(download_id=download.pk)
    modelfile = ModelFile.objects.get()
    flip_a_byte(local_file(REPO, FILE, "main"))
    verify(modelfile)

    page = client_for(operator).get("/files/").content.decode()
    assert "corrupt" in page and f'action="/files/{modelfile.pk}/repull/"' in page
    response = client_for(operator).post(f"/files/{modelfile.pk}/repull/")
    assert response.status_code == 302 and response.url == "/files/downloads/"
    assert local_file(REPO, FILE, "main") is None  # the damaged blob and its link are gone
    modelfile.refresh_from_db()
    assert (modelfile.present, modelfile.state) == (False, "ok")
    again = Download.objects.exclude(pk=download.pk).get()
    assert again.revision == modelfile.snapshot  # the same commit, whatever main points at now
    assert AuditEntry.objects.filter(kind="modelfile", action="repull").exists()

    services.download_run(download_id=again.pk)
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    modelfile.refresh_from_db()
    assert (modelfile.present, modelfile.state) == (True, "ok")
    assert verify(modelfile).status == "ok"


def test_re_pull_refuses_a_file_that_is_not_corrupt(hf_home, client_for, operator):
    modelfile = cached(hf_home)
    response = client_for(operator).post(f"/files/{modelfile.pk}/repull/", follow=True)
    assert "not marked corrupt" in response.content.decode()
    assert local_file(REPO, FILE, "main") is not None


def test_the_alias_page_of_a_corrupt_file_re_pulls_it_and_comes_back(
    hub, hf_env, client_for, operator, viewer, alias_factory
):
    hub.add_repo(REPO, files={FILE: pseudo_random(200_000)})
    download, _ = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    services.download_run(download_id=download.pk)
    modelfile = ModelFile.objects.get()
    flip_a_byte(local_file(REPO, FILE, "main"))
    verify(modelfile)
    alias_factory(alias="damaged", repo=REPO, filename=FILE)

    page = client_for(operator).get("/aliases/damaged/").content.decode()
    assert 'data-file-status="corrupt"' in page and f'data-repull="{FILE}"' in page
    assert f'action="/files/{modelfile.pk}/repull/"' in page
    assert "data-repull" not in client_for(viewer).get("/aliases/damaged/").content.decode()  # viewers cannot pull

    response = client_for(operator).post(f"/files/{modelfile.pk}/repull/", {"next": "/aliases/damaged/"})

    assert response.status_code == 302 and response.url == "/aliases/damaged/"
    assert Download.objects.exclude(pk=download.pk).get().status == "queued"
    back = client_for(operator).get("/aliases/damaged/").content.decode()
    assert 'data-file-status="downloading"' in back and "data-repull" not in back
