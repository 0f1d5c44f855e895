"""Every change the services make is recorded once in the audit log: who, what, and the object before and after."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from aliases.models import Alias, AliasChange
from aliases.services import AliasVersionConflict, alias_create, alias_delete, alias_update
from config.audit.models import AuditEntry
from modelfiles import services as modelfile_services
from modelfiles.models import Download
from modelfiles.services import download_cancel, download_request, download_retry, modelfile_sync
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file, make_download
from tests.modelfiles.conftest import hf_home

__all__ = ["hf_home"]  # fixture: every test gets an empty HF cache of its own

pytestmark = pytest.mark.django_db

REPO = "acme/Tiny-GGUF"
ALIAS_DATA = {"alias": "tiny:chat", "repo": REPO, "filename": "tiny.Q4_K_M.gguf", "temperature": 0.7}


def only_entry(**filters) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(**filters))
    assert len(entries) == 1, entries
    return entries[0]


def plain(alias: Alias) -> dict:
    """The alias's editable values as the audit log stores them (JSON)."""
    return {**alias.values()}


# --- aliases -------------------------------------------------------------------------------------------------------


def test_creating_an_alias_records_who_and_its_values(editor):
    alias = alias_create(data=ALIAS_DATA, by=editor)

    entry = only_entry()
    assert (entry.actor, entry.actor_name, entry.kind, entry.action) == (editor, "edith-editor", "alias", "create")
    assert (entry.object_id, entry.object_repr) == (str(alias.pk), "tiny:chat")
    assert entry.before is None
    assert entry.after == plain(alias)
    assert entry.after["temperature"] == 0.7 and entry.after["n_ctx"] is None


def test_updating_an_alias_records_before_and_after_and_keeps_its_history(editor, admin_user):
    alias = alias_create(data=ALIAS_DATA, by=editor)
    before = plain(alias)

    alias_update(alias=alias, data={"temperature": 1.1, "n_ctx": 4096}, expected_version=1, by=admin_user)

    entry = only_entry(action="update")
    alias.refresh_from_db()
    assert (entry.actor_name, entry.kind, entry.object_id) == ("ada-admin", "alias", str(alias.pk))
    assert entry.before == before
    assert entry.after == plain(alias)
    assert (entry.before["temperature"], entry.after["temperature"]) == (0.7, 1.1)
    # The alias's own history is unchanged: one change record per save, shown on its page.
    assert list(AliasChange.objects.filter(alias=alias).values_list("action", "version")) == [
        ("update", 2),
        ("create", 1),
    ]
    assert AuditEntry.objects.count() == 2


def test_an_update_that_changes_nothing_or_is_stale_records_nothing(editor):
    alias = alias_create(data=ALIAS_DATA, by=editor)

    alias_update(alias=alias, data={"temperature": 0.7}, expected_version=1, by=editor)
    with pytest.raises(AliasVersionConflict):
        alias_update(alias=alias, data={"temperature": 0.2}, expected_version=7, by=editor)
    with pytest.raises(ValidationError):
        alias_update(alias=alias, data={"temperature": 9}, expected_version=1, by=editor)

    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["create"]


def test_deleting_an_alias_records_its_last_values(editor):
    alias = alias_create(data=ALIAS_DATA, by=editor)
    values, pk = plain(alias), alias.pk

    alias_delete(alias=alias, by=editor)
    alias_delete(alias=alias, by=editor)  # already gone: one effect, one entry

    entry = only_entry(action="delete")
    assert (entry.actor_name, entry.object_id, entry.object_repr) == ("edith-editor", str(pk), "tiny:chat")
    assert entry.before == values and entry.after is None
    assert AliasChange.objects.filter(alias_name="tiny:chat", action="delete").count() == 1


def test_a_refused_or_rolled_back_alias_change_leaves_no_entry(editor):
    with pytest.raises(ValidationError):
        alias_create(data={**ALIAS_DATA, "repo": "not a repo"}, by=editor)
    with pytest.raises(RuntimeError), transaction.atomic():
        alias_create(data=ALIAS_DATA, by=editor)
        raise RuntimeError("the caller's transaction fails after the change")

    assert not Alias.objects.exists()
    assert not AuditEntry.objects.exists()


def test_alias_pages_and_api_record_each_change_once(client_for, editor):
    client = client_for(editor)
    response = client.post(
        "/api/models", {"alias": "api-made", "repo": REPO, "filename": "a.gguf"}, content_type="application/json"
    )
    assert response.status_code == 201
    alias = Alias.objects.get(alias="api-made")
    response = client.post(reverse("aliases:delete", args=[alias.alias]), {"version": alias.version, "confirm": "yes"})
    assert response.status_code == 302

    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor_name", "object_repr")) == [
        ("create", "edith-editor", "api-made"),
        ("delete", "edith-editor", "api-made"),
    ]


# --- aliases generated from model files, and scans -------------------------------------------------------------------


def test_a_scan_records_itself_and_the_generated_aliases_as_the_system(hf_home):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")

    modelfile_sync()

    scan = only_entry(kind="modelfile")
    assert (scan.actor, scan.actor_name, scan.action, scan.object_repr) == (None, "", "scan", "all repos")
    assert scan.after == {
        "created": 1,
        "updated": 0,
        "removed": 0,
        "present": 1,
        "files_added": [f"{REPO}/tiny.Q4_K_M.gguf@{COMMIT}"],
        "files_removed": [],
    }
    generated = Alias.objects.get(source=Alias.Source.MODEL)
    created = only_entry(kind="alias")
    assert (created.actor, created.action, created.object_id) == (None, "create", str(generated.pk))
    assert created.object_repr == f"{REPO}:Q4_K_M" and created.after == plain(generated)


def test_a_rescan_someone_asked_for_records_who(hf_home, operator_client, operator):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")

    assert operator_client.post("/files/rescan/").status_code == 302

    scan = only_entry(kind="modelfile")
    assert (scan.actor, scan.actor_name, scan.action) == (operator, operator.username, "scan")


def test_a_scan_that_changes_nothing_records_nothing(hf_home):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    modelfile_sync()
    count = AuditEntry.objects.count()

    modelfile_sync()
    modelfile_sync(repo=REPO)

    assert AuditEntry.objects.count() == count


def test_a_generated_alias_that_moves_to_a_new_snapshot_or_vanishes_is_recorded(hf_home):
    link = cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    modelfile_sync()
    generated = Alias.objects.get(source=Alias.Source.MODEL)

    # `main` moves to a new commit holding the same file: the generated alias follows it.
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf", commit=OTHER_COMMIT)
    modelfile_sync(repo=REPO)
    moved = only_entry(kind="alias", action="update")
    assert moved.actor is None and moved.object_id == str(generated.pk)
    assert (moved.before["snapshot"], moved.after["snapshot"]) == (COMMIT, OTHER_COMMIT)

    link.unlink()
    (hf_home / "hub" / "models--acme--Tiny-GGUF" / "snapshots" / OTHER_COMMIT / "tiny.Q4_K_M.gguf").unlink()
    modelfile_sync()
    gone = only_entry(kind="alias", action="delete")
    assert gone.object_id == str(generated.pk) and gone.before["snapshot"] == OTHER_COMMIT and gone.after is None
    last_scan = AuditEntry.objects.filter(kind="modelfile").first()
    assert last_scan.after["removed"] == 2 and last_scan.after["present"] == 0
    assert sorted(last_scan.after["files_removed"]) == [
        f"{REPO}/tiny.Q4_K_M.gguf@{COMMIT}",
        f"{REPO}/tiny.Q4_K_M.gguf@{OTHER_COMMIT}",
    ]


def test_a_scan_entry_names_a_bounded_number_of_files_but_counts_them_all(hf_home, monkeypatch):
    monkeypatch.setattr(modelfile_services, "AUDIT_SCAN_FILES", 2)
    for number in range(3):
        cache_file(hf_home, REPO, f"tiny-{number}.Q4_K_M.gguf", content=b"GGUF" + bytes([number]))

    modelfile_sync(repo=REPO)

    scan = only_entry(kind="modelfile")
    assert scan.object_id == REPO and scan.object_repr == REPO
    assert scan.after["created"] == 3
    assert scan.after["files_added"] == [
        f"{REPO}/tiny-0.Q4_K_M.gguf@{COMMIT}",
        f"{REPO}/tiny-1.Q4_K_M.gguf@{COMMIT}",
    ]


# --- downloads -----------------------------------------------------------------------------------------------------


def test_requesting_a_pull_records_it_once(operator):
    download, created = download_request(repo=REPO, filename="tiny.Q4_K_M.gguf", revision="main", by=operator)
    again, created_again = download_request(repo=REPO, filename="tiny.Q4_K_M.gguf", revision="main", by=operator)

    assert created and not created_again and again.pk == download.pk
    entry = only_entry()
    assert (entry.actor, entry.kind, entry.action) == (operator, "download", "request")
    assert (entry.object_id, entry.object_repr) == (str(download.pk), f"{REPO}/tiny.Q4_K_M.gguf@main")
    assert entry.before is None
    assert entry.after == {"repo": REPO, "filename": "tiny.Q4_K_M.gguf", "revision": "main", "status": "queued"}


def test_a_refused_pull_records_nothing(operator, hf_home):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    with pytest.raises(ValidationError):
        download_request(repo="no repo", filename="x.gguf", revision="main", by=operator)
    with pytest.raises(modelfile_services.AlreadyLocal):
        download_request(repo=REPO, filename="tiny.Q4_K_M.gguf", revision="main", by=operator)

    assert not AuditEntry.objects.exists()


def test_cancelling_records_the_state_it_stopped(operator):
    download = make_download(status=Download.Status.DOWNLOADING)

    assert download_cancel(download=download, by=operator)
    assert not download_cancel(download=download, by=operator)  # not active any more: nothing changed

    entry = only_entry()
    assert (entry.actor_name, entry.kind, entry.action, entry.object_id) == (
        "otto-operator",
        "download",
        "cancel",
        str(download.pk),
    )
    assert (entry.before, entry.after) == ({"status": "downloading"}, {"status": "cancelled"})


def test_retrying_records_the_requeue_and_a_refused_retry_nothing(operator):
    failed = make_download(status=Download.Status.FAILED, error_code="network_error")
    completed = make_download(status=Download.Status.COMPLETED)

    _, requeued = download_retry(download=failed, by=operator)
    _, requeued_completed = download_retry(download=completed, by=operator)

    assert requeued and not requeued_completed
    entry = only_entry()
    assert (entry.actor_name, entry.action, entry.object_id) == ("otto-operator", "retry", str(failed.pk))
    assert (entry.before, entry.after) == ({"status": "failed"}, {"status": "queued"})


def test_download_pages_record_each_action_once(operator_client):
    response = operator_client.post(
        reverse("modelfiles:pull"), {"repo": REPO, "filename": "tiny.Q4_K_M.gguf", "revision": "main"}
    )
    assert response.status_code == 302
    download = Download.objects.get()
    operator_client.post(reverse("modelfiles:download-cancel", args=[download.pk]))
    operator_client.post(reverse("modelfiles:download-retry", args=[download.pk]))

    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor_name", "object_id")) == [
        ("request", "otto-operator", str(download.pk)),
        ("cancel", "otto-operator", str(download.pk)),
        ("retry", "otto-operator", str(download.pk)),
    ]
