"""Deleting a cached model file: one revision or all, refused while aliases load it unless confirmed, through
huggingface_hub's cache deletion, so its own scan_cache_dir finds nothing wrong afterwards."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse
from huggingface_hub import scan_cache_dir

from aliases.models import Alias
from config.audit.models import AuditEntry
from modelfiles.models import Download, ModelFile
from modelfiles.services import ModelFileBusy, ModelFileInUse, modelfile_delete, modelfile_sync
from tests.api_errors import assert_error
from tests.factories import AliasFactory
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file, make_download

pytestmark = pytest.mark.django_db

REPO = "acme/Tiny-GGUF"
FILE = "tiny.Q4_K_M.gguf"
OTHER = "tiny.Q8_0.gguf"


def hub(hf_home):
    return hf_home / "hub" / "models--acme--Tiny-GGUF"


def assert_cache_consistent(hf_home):
    info = scan_cache_dir(hf_home / "hub")
    assert info.warnings == [], info.warnings
    return info


def row(filename=FILE, snapshot=COMMIT) -> ModelFile:
    return ModelFile.objects.get(repo=REPO, filename=filename, snapshot=snapshot, present=True)


def test_the_only_file_of_a_revision_goes_with_its_revision_and_repo_folder(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    modelfile_delete(modelfile=row(), by=admin_user)
    assert not hub(hf_home).exists()
    assert_cache_consistent(hf_home)
    assert not ModelFile.objects.filter(present=True).exists()
    # Its generated alias goes with it.
    assert not Alias.objects.filter(source=Alias.Source.MODEL).exists()


def test_one_file_of_a_snapshot_with_others_removes_its_link_and_unshared_blob(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE, content=b"GGUF one")
    cache_file(hf_home, REPO, OTHER, content=b"GGUF two")
    modelfile_sync()
    blob = hub(hf_home) / "blobs" / row().etag
    modelfile_delete(modelfile=row(), by=admin_user)
    assert not (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()
    assert not blob.exists()
    assert (hub(hf_home) / "snapshots" / COMMIT / OTHER).exists()
    info = assert_cache_consistent(hf_home)
    (repo,) = info.repos
    assert {file.file_name for revision in repo.revisions for file in revision.files} == {OTHER}
    assert list(ModelFile.objects.filter(present=True).values_list("filename", flat=True)) == [OTHER]


def test_a_blob_another_snapshot_links_to_stays(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="v1", content=b"GGUF same")
    cache_file(hf_home, REPO, OTHER, commit=COMMIT, ref="v1", content=b"GGUF other")
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="main", content=b"GGUF same")
    modelfile_sync()
    modelfile_delete(modelfile=row(), by=admin_user)
    assert (hub(hf_home) / "blobs" / row(snapshot=OTHER_COMMIT).etag).is_file()
    assert (hub(hf_home) / "snapshots" / OTHER_COMMIT / FILE).exists()
    assert not os.path.lexists(hub(hf_home) / "snapshots" / COMMIT / FILE)
    assert_cache_consistent(hf_home)


def test_all_revisions_removes_every_snapshot_of_the_file(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="v1", content=b"GGUF old")
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="main", content=b"GGUF new")
    cache_file(hf_home, "acme/Keep-GGUF", FILE, content=b"GGUF keep")
    modelfile_sync()
    modelfile_delete(modelfile=row(), all_revisions=True, by=admin_user)
    assert not hub(hf_home).exists()
    info = assert_cache_consistent(hf_home)
    assert [repo.repo_id for repo in info.repos] == ["acme/Keep-GGUF"]
    assert list(ModelFile.objects.filter(present=True).values_list("repo", flat=True)) == ["acme/Keep-GGUF"]
    entries = AuditEntry.objects.filter(kind="modelfile", action="delete")
    assert entries.count() == 2
    assert {entry.before["snapshot"] for entry in entries} == {COMMIT, OTHER_COMMIT}
    assert all(entry.actor == admin_user for entry in entries)


def test_a_file_user_aliases_load_is_refused_unless_forced(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    AliasFactory(alias="by-ref", repo=REPO, filename=FILE, snapshot="main")
    AliasFactory(alias="by-commit", repo=REPO, filename=FILE, snapshot=COMMIT)
    AliasFactory(alias="elsewhere", repo=REPO, filename=FILE, snapshot=OTHER_COMMIT)
    with pytest.raises(ModelFileInUse) as refused:
        modelfile_delete(modelfile=row(), by=admin_user)
    assert refused.value.aliases == ["by-commit", "by-ref"]
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()
    modelfile_delete(modelfile=row(), force=True, by=admin_user)
    assert not hub(hf_home).exists()
    entry = AuditEntry.objects.get(kind="modelfile", action="delete")
    assert entry.before["aliases"] == ["by-commit", "by-ref"]
    assert entry.before["filename"] == FILE


def test_a_file_an_active_download_writes_is_never_deleted(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    make_download(repo=REPO, filename=FILE, revision="main", status=Download.Status.DOWNLOADING)
    with pytest.raises(ModelFileBusy):
        modelfile_delete(modelfile=row(), force=True, by=admin_user)
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


def test_an_active_downloads_partial_file_survives_deleting_the_repos_last_revision(hf_home, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    etag = "a" * 64
    partial = hub(hf_home) / "blobs" / f"{etag}.modeldesk-partial"
    partial.write_bytes(b"half")
    make_download(repo=REPO, filename=OTHER, status=Download.Status.DOWNLOADING, commit=COMMIT, etag=etag)
    modelfile_delete(modelfile=row(), by=admin_user)
    assert partial.read_bytes() == b"half"
    assert not (hub(hf_home) / "snapshots" / COMMIT).exists()


# --- the API -------------------------------------------------------------------------------------------------------


def delete_url(modelfile: ModelFile, query: str = "") -> str:
    return f"/api/modelfiles/{modelfile.pk}{query}"


def test_the_api_lists_the_id_that_delete_takes(hf_home, viewer_client):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    (listed,) = viewer_client.get("/api/modelfiles").json()["data"]
    assert listed["id"] == row().pk


def test_api_delete_answers_204_and_the_cache_stays_consistent(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE, content=b"GGUF one")
    cache_file(hf_home, REPO, OTHER, content=b"GGUF two")
    modelfile_sync()
    response = client_for(admin_user).delete(delete_url(row()))
    assert response.status_code == 204 and response.content == b""
    assert_cache_consistent(hf_home)
    assert not ModelFile.objects.filter(filename=FILE, present=True).exists()


def test_api_delete_names_the_aliases_with_409_until_forced(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    AliasFactory(alias="chat", repo=REPO, filename=FILE, snapshot="main")
    client = client_for(admin_user)
    response = client.delete(delete_url(row()))
    error = assert_error(response, 409, "conflict_error", code="in_use")
    assert "chat" in error["message"]
    assert response.json()["aliases"] == ["chat"]
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()
    assert client.delete(delete_url(row(), "?force=1")).status_code == 204
    assert not hub(hf_home).exists()
    assert_cache_consistent(hf_home)


def test_api_delete_of_all_revisions(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="v1", content=b"GGUF old")
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="main", content=b"GGUF new")
    modelfile_sync()
    response = client_for(admin_user).delete(delete_url(row(), "?all_revisions=true"))
    assert response.status_code == 204
    assert not ModelFile.objects.filter(present=True).exists()


def test_api_delete_refuses_while_a_download_writes_the_file(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    make_download(repo=REPO, filename=FILE, status=Download.Status.QUEUED)
    response = client_for(admin_user).delete(delete_url(row(), "?force=1"))
    assert_error(response, 409, "conflict_error", code="downloading")
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


def test_api_delete_of_an_unknown_or_gone_file_is_404(hf_home, client_for, admin_user):
    client = client_for(admin_user)
    assert_error(client.delete("/api/modelfiles/999999"), 404, "not_found_error", code="modelfile_not_found")
    assert_error(client.delete(f"/api/modelfiles/{2**70}"), 404, "not_found_error")
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    gone = row()
    client.delete(delete_url(gone))
    assert_error(client.delete(delete_url(gone)), 404, "not_found_error", code="modelfile_not_found")


def test_api_delete_refuses_a_flag_that_is_not_a_boolean(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    response = client_for(admin_user).delete(delete_url(row(), "?force=maybe"))
    assert_error(response, 400, "invalid_request_error", code="invalid_parameter", param="force")
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_only_admins_may_delete_files(hf_home, make_user, client_for, role):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    client = client_for(make_user(role))
    assert_error(client.delete(delete_url(row(), "?force=1")), 403, "forbidden_error")
    assert client.get(reverse("modelfiles:delete", args=[row().pk])).status_code == 403
    assert client.post(reverse("modelfiles:delete", args=[row().pk]), {"confirm": "1"}).status_code == 403
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


# --- the pages -----------------------------------------------------------------------------------------------------


def test_admins_see_a_delete_button_on_the_list_and_others_do_not(hf_home, client_for, admin_user, editor):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    url = reverse("modelfiles:delete", args=[row().pk])
    assert url in client_for(admin_user).get(reverse("modelfiles:list")).content.decode()
    assert url not in client_for(editor).get(reverse("modelfiles:list")).content.decode()


def test_the_confirmation_page_lists_the_aliases_that_become_unavailable(hf_home, client_for, admin_user):
    from tests.test_headers import inline_code

    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    AliasFactory(alias="team-chat", repo=REPO, filename=FILE, snapshot="main")
    response = client_for(admin_user).get(reverse("modelfiles:delete", args=[row().pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "team-chat" in page and "will become unavailable" in page
    assert "acme/Tiny-GGUF:Q4_K_M" in page  # the generated alias, which goes with the file
    assert inline_code(page) == []


def test_confirming_on_the_page_deletes_and_says_how_much_was_freed(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE, content=b"GGUF" + b"x" * 2044)
    modelfile_sync()
    AliasFactory(alias="team-chat", repo=REPO, filename=FILE, snapshot="main")
    client = client_for(admin_user)
    url = reverse("modelfiles:delete", args=[row().pk])
    response = client.post(url, {"confirm": "1", "seen_alias": ["team-chat"]}, follow=True)
    assert response.redirect_chain == [(reverse("modelfiles:list"), 302)]
    assert "2.0 KB freed" in response.content.decode()
    assert not hub(hf_home).exists()
    assert_cache_consistent(hf_home)
    assert AuditEntry.objects.filter(kind="modelfile", action="delete", actor=admin_user).count() == 1


def test_a_post_without_the_confirmation_deletes_nothing(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    response = client_for(admin_user).post(reverse("modelfiles:delete", args=[row().pk]), {})
    assert response.status_code == 400
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


def test_an_alias_added_after_the_page_was_shown_asks_again(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    AliasFactory(alias="seen", repo=REPO, filename=FILE, snapshot="main")
    AliasFactory(alias="newcomer", repo=REPO, filename=FILE, snapshot=COMMIT)
    response = client_for(admin_user).post(
        reverse("modelfiles:delete", args=[row().pk]), {"confirm": "1", "seen_alias": ["seen"]}
    )
    assert response.status_code == 409
    assert "newcomer" in response.content.decode()
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


def test_the_page_refuses_while_a_download_writes_the_file(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    make_download(repo=REPO, filename=FILE, status=Download.Status.DOWNLOADING, commit=COMMIT)
    response = client_for(admin_user).post(reverse("modelfiles:delete", args=[row().pk]), {"confirm": "1"})
    assert response.status_code == 409
    assert "cancel it or wait" in response.content.decode()
    assert (hub(hf_home) / "snapshots" / COMMIT / FILE).exists()


def test_the_page_offers_and_deletes_all_revisions(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="v1", content=b"GGUF old")
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="main", content=b"GGUF new")
    modelfile_sync()
    client = client_for(admin_user)
    url = reverse("modelfiles:delete", args=[row().pk])
    assert "delete all of them" in client.get(url).content.decode()
    page = client.get(url + "?all_revisions=1").content.decode()
    assert OTHER_COMMIT in page and COMMIT in page
    response = client.post(url, {"confirm": "1", "all_revisions": "1"})
    assert response.status_code == 302
    assert not ModelFile.objects.filter(present=True).exists()
    assert_cache_consistent(hf_home)


def test_a_fork_sharing_the_commit_keeps_its_copy(hf_home, admin_user):
    # huggingface_hub's delete_revisions matches a commit in every repo; a fork has the same commit hashes.
    forks = [f"acme/Fork{number}-GGUF" for number in range(4)]  # its sets have no order: no lucky pass
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="v1", content=b"GGUF old")
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="main", content=b"GGUF new")
    for fork in forks:
        cache_file(hf_home, fork, FILE, commit=COMMIT, content=b"GGUF old")
        cache_file(hf_home, fork, FILE, commit=OTHER_COMMIT, ref="v2", content=b"GGUF new")
    modelfile_sync()
    modelfile_delete(modelfile=row(), all_revisions=True, by=admin_user)
    info = assert_cache_consistent(hf_home)
    assert sorted(repo.repo_id for repo in info.repos) == forks
    for repo in info.repos:
        assert {revision.commit_hash for revision in repo.revisions} == {COMMIT, OTHER_COMMIT}


def test_the_done_message_names_the_file_and_its_repo_once(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE, content=b"GGUF" + b"x" * 2044)
    modelfile_sync()
    response = client_for(admin_user).post(reverse("modelfiles:delete", args=[row().pk]), {"confirm": "1"}, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"Deleted {FILE}@{COMMIT[:8]} from {REPO}; 2.0 KB freed."]


def test_a_files_page_offers_delete_to_admins_only(hf_home, client_for, admin_user, operator, editor):
    cache_file(hf_home, REPO, FILE)
    modelfile_sync()
    modelfile = row()
    detail, delete = (
        reverse("modelfiles:detail", args=[modelfile.pk]),
        reverse("modelfiles:delete", args=[modelfile.pk]),
    )
    assert f'href="{delete}"' in client_for(admin_user).get(detail).content.decode()
    for user in (operator, editor):
        assert f'href="{delete}"' not in client_for(user).get(detail).content.decode()
    ModelFile.objects.filter(pk=modelfile.pk).update(present=False)  # gone from the cache: nothing to delete
    assert f'href="{delete}"' not in client_for(admin_user).get(detail).content.decode()
