"""The storage page and cache cleanup: leftovers listed with their sizes, a dry run, a confirmed run that leaves
active downloads alone, and a cache huggingface_hub's own scan_cache_dir finds nothing wrong with afterwards."""

from __future__ import annotations

import fcntl
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from huggingface_hub import scan_cache_dir

from config.audit.models import AuditEntry
from modelfiles import cleanup
from modelfiles.models import Download, ModelFile
from modelfiles.services import cache_cleanup, cache_cleanup_plan, modelfile_sync
from tests.factories import AliasFactory
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file, make_download

pytestmark = pytest.mark.django_db

REPO = "acme/Tiny-GGUF"
FILE = "tiny.Q4_K_M.gguf"
UNUSED = "tiny.Q8_0.gguf"
THIRD_COMMIT = "1111111111111111111111111111111111111111"
ACTIVE_ETAG = "a" * 64
STALE_ETAG = "b" * 64


def root(hf_home, repo=REPO):
    return hf_home / "hub" / ("models--" + repo.replace("/", "--"))


def locks(hf_home, repo=REPO):
    return hf_home / "hub" / ".locks" / ("models--" + repo.replace("/", "--"))


@pytest.fixture
def shelf(hf_home):
    """A cache with one of every leftover, a file an alias loads, and an active download's partial file and lock."""
    cache_file(hf_home, REPO, FILE, commit=COMMIT, ref="main", content=b"GGUF used")
    cache_file(hf_home, REPO, UNUSED, commit=COMMIT, ref="main", content=b"GGUF unused file")
    # A revision no ref points at (its ref moved on): only reachable by commit.
    cache_file(hf_home, REPO, FILE, commit=OTHER_COMMIT, ref="old", content=b"GGUF old revision!")
    (root(hf_home) / "refs" / "old").unlink()
    # A revision an alias is pinned to by commit, with no ref: not a leftover.
    cache_file(hf_home, REPO, FILE, commit=THIRD_COMMIT, ref="pinned", content=b"GGUF pinned")
    (root(hf_home) / "refs" / "pinned").unlink()
    no_exist = root(hf_home) / ".no_exist" / COMMIT / "missing.gguf"
    no_exist.parent.mkdir(parents=True)
    no_exist.touch()
    blobs = root(hf_home) / "blobs"
    (blobs / f"{STALE_ETAG}.modeldesk-partial").write_bytes(b"x" * 1000)
    (blobs / f"{ACTIVE_ETAG}.modeldesk-partial").write_bytes(b"y" * 500)
    locks(hf_home).mkdir(parents=True)
    (locks(hf_home) / f"{STALE_ETAG}.lock").touch()
    (locks(hf_home) / f"{ACTIVE_ETAG}.lock").touch()
    modelfile_sync()
    AliasFactory(alias="chat", repo=REPO, filename=FILE, snapshot="main")
    AliasFactory(alias="pinned", repo=REPO, filename=FILE, snapshot=THIRD_COMMIT)
    make_download(repo=REPO, filename="next.gguf", status=Download.Status.DOWNLOADING, etag=ACTIVE_ETAG)
    return hf_home


def by_kind(plan):
    found = {}
    for item in plan:
        found.setdefault(item.kind, []).append(item)
    return found


def assert_cache_consistent(hf_home):
    info = scan_cache_dir(hf_home / "hub")
    assert info.warnings == [], info.warnings
    return info


def test_the_plan_lists_every_leftover_with_its_size_and_removes_nothing(shelf):
    before = sorted(str(path) for path in shelf.rglob("*"))
    plan = by_kind(cache_cleanup_plan(kinds=cleanup.KINDS))
    assert [(item.path, item.size) for item in plan[cleanup.PARTIAL]] == [
        (f"models--acme--Tiny-GGUF/blobs/{STALE_ETAG}.modeldesk-partial", 1000)
    ]
    (revision,) = plan[cleanup.UNREFERENCED_REVISION]
    assert revision.commit == OTHER_COMMIT and revision.size == len(b"GGUF old revision!")
    assert [item.path for item in plan[cleanup.NO_EXIST]] == ["models--acme--Tiny-GGUF/.no_exist"]
    assert [item.path for item in plan[cleanup.LOCK]] == [f".locks/models--acme--Tiny-GGUF/{STALE_ETAG}.lock"]
    (unused,) = plan[cleanup.UNUSED_FILE]
    assert (unused.filename, unused.commit, unused.size) == (UNUSED, COMMIT, len(b"GGUF unused file"))
    assert sorted(str(path) for path in shelf.rglob("*")) == before


def test_cleanup_removes_the_leftovers_and_keeps_what_is_used_or_active(shelf, admin_user):
    removal = cache_cleanup(kinds=cleanup.DEFAULT_KINDS, by=admin_user)
    blobs = root(shelf) / "blobs"
    assert not (blobs / f"{STALE_ETAG}.modeldesk-partial").exists()
    assert not (root(shelf) / "snapshots" / OTHER_COMMIT).exists()
    assert not (root(shelf) / ".no_exist").exists()
    assert not (locks(shelf) / f"{STALE_ETAG}.lock").exists()
    # The active download's partial file and lock, the used and pinned revisions, and (not asked) the unused file.
    assert (blobs / f"{ACTIVE_ETAG}.modeldesk-partial").read_bytes() == b"y" * 500
    assert (locks(shelf) / f"{ACTIVE_ETAG}.lock").exists()
    assert (root(shelf) / "snapshots" / COMMIT / FILE).exists()
    assert (root(shelf) / "snapshots" / COMMIT / UNUSED).exists()
    assert (root(shelf) / "snapshots" / THIRD_COMMIT / FILE).exists()
    assert removal.freed == 1000 + len(b"GGUF old revision!")
    assert_cache_consistent(shelf)
    assert not ModelFile.objects.filter(snapshot=OTHER_COMMIT, present=True).exists()
    entry = AuditEntry.objects.get(kind="modelfile", action="cleanup")
    assert entry.actor == admin_user
    assert entry.after["freed"] == removal.freed
    assert f"models--acme--Tiny-GGUF/blobs/{STALE_ETAG}.modeldesk-partial" in entry.after["removed"]


def test_unused_files_go_only_when_asked(shelf, admin_user):
    cache_cleanup(kinds=[cleanup.UNUSED_FILE], by=admin_user)
    assert not os.path.lexists(root(shelf) / "snapshots" / COMMIT / UNUSED)
    assert (root(shelf) / "snapshots" / COMMIT / FILE).exists()
    assert (root(shelf) / "snapshots" / THIRD_COMMIT / FILE).exists()  # the pinned alias loads it
    # No alias loads the old revision's copy either; it was its revision's only file, so the revision went.
    assert not (root(shelf) / "snapshots" / OTHER_COMMIT).exists()
    assert_cache_consistent(shelf)
    assert not ModelFile.objects.filter(filename=UNUSED, present=True).exists()


def test_a_lock_another_process_holds_is_left_alone(shelf, admin_user):
    lock = locks(shelf) / f"{STALE_ETAG}.lock"
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cleanup.LOCK not in by_kind(cache_cleanup_plan(kinds=[cleanup.LOCK]))
        cache_cleanup(kinds=[cleanup.LOCK], by=admin_user)
        assert lock.exists()
    cache_cleanup(kinds=[cleanup.LOCK], by=admin_user)
    assert not lock.exists()


def test_an_active_download_without_a_known_blob_keeps_every_partial_of_its_repo(shelf, admin_user):
    make_download(repo=REPO, filename="another.gguf", status=Download.Status.QUEUED)
    cache_cleanup(kinds=[cleanup.PARTIAL, cleanup.LOCK], by=admin_user)
    assert (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()
    assert (locks(shelf) / f"{STALE_ETAG}.lock").exists()


def test_a_repo_left_with_only_a_stale_partial_file_goes_whole(hf_home, admin_user):
    cache_file(hf_home, "acme/Keep-GGUF", FILE)
    partial = root(hf_home, "acme/Gone-GGUF") / "blobs" / f"{STALE_ETAG}.modeldesk-partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"z" * 10)
    # huggingface_hub warns about a repo folder without snapshots: the state a cancelled first pull leaves.
    assert len(scan_cache_dir(hf_home / "hub").warnings) == 1
    cache_cleanup(by=admin_user)
    assert not root(hf_home, "acme/Gone-GGUF").exists()
    info = assert_cache_consistent(hf_home)
    assert [repo.repo_id for repo in info.repos] == ["acme/Keep-GGUF"]


# --- the command ---------------------------------------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("cleanup", *args, stdout=out)
    return out.getvalue()


def test_the_command_dry_run_lists_and_removes_nothing(shelf):
    output = run("--dry-run")
    assert f"partial: models--acme--Tiny-GGUF/blobs/{STALE_ETAG}.modeldesk-partial" in output
    assert "4 entries would be removed" in output
    assert (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()
    assert not AuditEntry.objects.filter(action="cleanup").exists()


def test_the_command_with_yes_removes_and_is_audited(shelf):
    output = run("--yes", "--unused-files")
    assert "Removed" in output
    assert not os.path.lexists(root(shelf) / "snapshots" / COMMIT / UNUSED)
    assert not (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()
    assert (root(shelf) / "blobs" / f"{ACTIVE_ETAG}.modeldesk-partial").exists()
    assert_cache_consistent(shelf)
    entry = AuditEntry.objects.get(kind="modelfile", action="cleanup")
    assert entry.actor is None and cleanup.UNUSED_FILE in entry.after["kinds"]


def test_the_command_needs_dry_run_or_yes(shelf):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        run()


# --- the pages -----------------------------------------------------------------------------------------------------


def test_the_storage_page_shows_usage_free_space_and_candidates(shelf, client_for, admin_user):
    from tests.test_headers import inline_code

    response = client_for(admin_user).get(reverse("modelfiles:storage"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-repo="acme/Tiny-GGUF"' in page
    assert 'data-testid="storage-free"' in page and "unknown" not in page
    for kind in cleanup.KINDS:
        assert f'data-testid="candidates-{kind}"' in page
    assert f"{STALE_ETAG}.modeldesk-partial" in page
    assert f"{ACTIVE_ETAG}.modeldesk-partial" not in page
    assert inline_code(page) == []


def test_the_storage_page_is_linked_from_the_model_files_page_and_the_dashboard(client_for, admin_user, operator):
    url = reverse("modelfiles:storage")
    assert url in client_for(admin_user).get(reverse("modelfiles:list")).content.decode()
    assert url in client_for(admin_user).get(reverse("home")).content.decode()
    assert url not in client_for(operator).get(reverse("modelfiles:list")).content.decode()


def test_the_preview_is_a_dry_run_and_the_confirmed_post_cleans(shelf, client_for, admin_user):
    from tests.test_headers import inline_code

    client = client_for(admin_user)
    preview = client.get(reverse("modelfiles:cleanup"), {"kind": [cleanup.PARTIAL, cleanup.NO_EXIST]})
    assert preview.status_code == 200
    page = preview.content.decode()
    assert "found <strong>2</strong> entries" in page
    assert inline_code(page) == []
    assert (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()
    response = client.post(
        reverse("modelfiles:cleanup"), {"kind": [cleanup.PARTIAL, cleanup.NO_EXIST], "confirm": "1"}, follow=True
    )
    assert response.redirect_chain == [(reverse("modelfiles:storage"), 302)]
    assert "Cleanup removed 2 entries" in response.content.decode()
    assert not (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()
    assert (locks(shelf) / f"{STALE_ETAG}.lock").exists()  # not chosen


def test_a_cleanup_post_without_the_confirmation_removes_nothing(shelf, client_for, admin_user):
    response = client_for(admin_user).post(reverse("modelfiles:cleanup"), {"kind": [cleanup.PARTIAL]})
    assert response.status_code == 400
    assert (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_only_admins_see_storage_and_clean_up(shelf, make_user, client_for, role):
    client = client_for(make_user(role))
    assert client.get(reverse("modelfiles:storage")).status_code == 403
    assert client.get(reverse("modelfiles:cleanup")).status_code == 403
    response = client.post(reverse("modelfiles:cleanup"), {"kind": [cleanup.PARTIAL], "confirm": "1"})
    assert response.status_code == 403
    assert (root(shelf) / "blobs" / f"{STALE_ETAG}.modeldesk-partial").exists()


def test_an_undecodable_leftover_name_is_shown_escaped_and_removed(hf_home, client_for, admin_user):
    cache_file(hf_home, REPO, FILE)
    odd = root(hf_home) / "blobs" / (os.fsdecode(b"\xff\n") + ".modeldesk-partial")
    odd.write_bytes(b"q" * 3)
    page = client_for(admin_user).get(reverse("modelfiles:storage"))
    assert page.status_code == 200
    assert "\\xff\\n.modeldesk-partial" in page.content.decode()
    removal = cache_cleanup(kinds=[cleanup.PARTIAL], by=admin_user)
    assert not os.path.lexists(odd)
    assert removal.removed == ["models--acme--Tiny-GGUF/blobs/\\xff\\n.modeldesk-partial"]
    assert AuditEntry.objects.get(action="cleanup").after["removed"] == removal.removed
    assert_cache_consistent(hf_home)


def test_a_cache_not_made_yet_has_nothing_to_clean(client_for, admin_user):
    assert "nothing to clean up" in run("--dry-run")
    page = client_for(admin_user).get(reverse("modelfiles:storage"))
    assert page.status_code == 200
    assert "The cache holds no model repos." in page.content.decode()
    assert 'data-testid="storage-free"' in page.content.decode()


def test_a_revision_a_queued_pull_asked_for_by_commit_is_not_a_leftover(shelf, admin_user):
    make_download(repo=REPO, filename="more.gguf", revision=OTHER_COMMIT, status=Download.Status.QUEUED)
    assert cleanup.UNREFERENCED_REVISION not in by_kind(cache_cleanup_plan(kinds=[cleanup.UNREFERENCED_REVISION]))
    cache_cleanup(kinds=[cleanup.UNREFERENCED_REVISION], by=admin_user)
    assert (root(shelf) / "snapshots" / OTHER_COMMIT / FILE).exists()
