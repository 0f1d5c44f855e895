"""Deleting a cached model file: one revision or all, refused while aliases load it unless confirmed, through
huggingface_hub's cache deletion, so its own scan_cache_dir finds nothing wrong afterwards."""

from __future__ import annotations

import os

import pytest
from huggingface_hub import scan_cache_dir

from aliases.models import Alias
from config.audit.models import AuditEntry
from modelfiles.models import Download, ModelFile
from modelfiles.services import ModelFileBusy, ModelFileInUse, modelfile_delete, modelfile_sync
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
