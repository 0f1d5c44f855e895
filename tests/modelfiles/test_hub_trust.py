"""The Hub is not trusted: what it sends never becomes a path outside the repo's cache folder, and "verified"
says exactly which hash was compared.

Real pulls through `services.download_run` (and `manage.py pull`) against the test Hub, told to send hostile
headers as a broken mirror, a compromised Hub or someone on the path of an http:// HF_ENDPOINT could.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from huggingface_hub import hf_hub_download

from modelfiles import cache, downloader, services
from modelfiles.cache import PARTIAL_SUFFIX, RepoPaths, UnsafePath, local_file
from modelfiles.hub import RemoteFile
from modelfiles.models import Download, ModelFile
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, hub_cache, pseudo_random

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 300_000
# From blobs/ (and from .locks/<repo>/) four levels up is the test's tmp_path: outside HF_HOME, inside the walk.
ESCAPE = "../../../../outside"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    # The download runs here; the task download_request also queues would only find the row already claimed.
    from modelfiles.tasks import download_task

    monkeypatch.setattr(download_task, "delay", lambda download_id: None)


def walk(root: Path) -> set[Path]:
    """Every path under `root`, links not followed."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(Path(folder, name))
    return found


def pull(repo: str = REPO, filename: str = FILE) -> Download:
    download, created = services.download_request(repo=repo, filename=filename, revision="main", by=None)
    assert created
    result = services.download_run(download_id=download.pk, worker="test")
    assert result is not None
    return result


def snapshot_entries(env) -> list[Path]:
    snapshots = hub_cache(env) / cache.repo_folder_name(REPO) / "snapshots"
    return [path for path in walk(snapshots) if not path.is_dir()] if snapshots.exists() else []


def assert_nothing_escaped(before: set[Path], tmp_path: Path, env) -> None:
    hf_home = Path(env["HF_HOME"])
    new = walk(tmp_path) - before
    outside = sorted(str(path) for path in new if not path.is_relative_to(hf_home))
    assert outside == []
    assert not [path for path in walk(tmp_path) if path.name.startswith("outside")]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Linked-Etag": None, "ETag": f'"{ESCAPE}"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": f'"{ESCAPE}"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": None, "ETag": '"/abs/path"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": '"' + "z" * 64 + '"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": '"' + "A" * 64 + '"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": '"' + "a" * 63 + '"'}, "hub_bad_etag"),
        ({"X-Linked-Etag": None, "ETag": None}, "hub_bad_etag"),
        ({"X-Repo-Commit": ESCAPE}, "hub_bad_commit"),
        ({"X-Repo-Commit": "0123456789abcdef/0123456789abcdef01234567"}, "hub_bad_commit"),
        ({"X-Repo-Commit": "main"}, "hub_bad_commit"),
        ({"X-Repo-Commit": None}, "hub_bad_commit"),
        ({"X-Linked-Size": "-5"}, "hub_bad_size"),
    ],
)
def test_hostile_headers_fail_the_download_at_once_and_write_nothing(hub, hf_env, tmp_path, headers, code):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.override_headers(headers, path=FILE)
    before = walk(tmp_path)

    download = pull()

    assert download.status == Download.Status.FAILED
    assert download.error_code == code
    assert "HF_ENDPOINT" in download.error_message and "mirror" in download.error_message
    assert download.attempts == 1  # not transient: no retry
    assert not [r for r in hub.requests if r.method == "GET" and r.route in ("resolve", "cdn")]
    assert_nothing_escaped(before, tmp_path, hf_env)
    assert snapshot_entries(hf_env) == []
    assert not ModelFile.objects.exists()


def test_a_weak_quoted_sha256_etag_is_accepted_as_huggingface_hub_normalises_it(hub, hf_env):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.override_headers({"X-Linked-Etag": f'W/"{hashlib.sha256(content).hexdigest()}"'}, path=FILE)
    download = pull()
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.verified == "sha256"


def test_an_lfs_file_is_verified_by_its_sha256(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    download = pull()
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.verified == "sha256"


def test_a_file_kept_in_git_is_verified_by_its_git_blob_sha1(hub, hf_env):
    content = pseudo_random(SIZE, seed=3)
    hub.add_repo(REPO, files={FILE: content}, lfs=False)
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()
    assert hub.blob(REPO, FILE).etag == git_sha1  # what the Hub sends for a non-LFS file

    download = pull()

    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.verified == "git-sha1"
    assert (download.etag, download.bytes_done) == (git_sha1, SIZE)
    path = hf_hub_download(REPO, FILE, cache_dir=hub_cache(hf_env), local_files_only=True)
    assert Path(path).read_bytes() == content


def test_a_wrong_git_sha1_fails_like_a_checksum_mismatch_and_nothing_is_visible(hub, hf_env, tmp_path):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)}, lfs=False)
    hub.override_headers({"ETag": '"' + "0" * 40 + '"'}, path=FILE)
    before = walk(tmp_path)

    download = pull()

    assert download.status == Download.Status.FAILED
    assert download.error_code == "checksum_mismatch"
    assert "git blob sha1" in download.error_message
    assert download.verified == ""
    assert download.attempts == 1
    assert local_file(REPO, FILE, "main") is None
    assert snapshot_entries(hf_env) == []
    assert list(RepoPaths.for_repo(REPO).blobs.iterdir()) == []  # the damaged partial was discarded
    assert_nothing_escaped(before, tmp_path, hf_env)


def test_a_git_sha1_is_checked_over_a_resumed_partial_file(hub, hf_env):
    content = pseudo_random(SIZE, seed=4)
    hub.add_repo(REPO, files={FILE: content}, lfs=False)
    hub.faults.set(drop_after_bytes=100_000, times=1)
    download = pull()
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.verified == "git-sha1"
    assert hub.range_requests(FILE)  # the second attempt continued the partial file
    assert local_file(REPO, FILE, "main").read_bytes() == content


def test_pull_command_says_which_hash_it_checked(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.add_repo(REPO, files={"git.Q2_K.gguf": pseudo_random(SIZE, seed=9)}, lfs=False)
    out = io.StringIO()
    call_command("pull", REPO, FILE, stdout=out)
    assert "sha256 verified." in out.getvalue()
    out = io.StringIO()
    call_command("pull", REPO, "git.Q2_K.gguf", stdout=out)
    assert "git blob sha1 verified" in out.getvalue()
    assert "sha256 verified" not in out.getvalue()


def test_pull_command_refuses_a_hostile_etag_and_names_hf_endpoint(hub, hf_env, tmp_path):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    hub.override_headers({"X-Linked-Etag": f'"{ESCAPE}"'}, path=FILE)
    before = walk(tmp_path)
    out = io.StringIO()
    with pytest.raises(CommandError, match="HF_ENDPOINT") as raised:
        call_command("pull", REPO, FILE, stdout=out)
    assert "neither a git sha1" in str(raised.value)
    assert "verified" not in out.getvalue()
    assert Download.objects.get().error_code == "hub_bad_etag"
    assert_nothing_escaped(before, tmp_path, hf_env)


# --- defence in depth: the write paths are checked even when the names look right -----------------------------------


def test_a_refs_folder_linked_outside_the_cache_is_refused(hub, hf_env, tmp_path):
    hub.add_repo(REPO, files={FILE: pseudo_random(SIZE)})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = RepoPaths.for_repo(REPO).root
    root.mkdir(parents=True)
    (root / "refs").symlink_to(outside)

    download = pull()

    assert download.status == Download.Status.FAILED
    assert download.error_code == "unsafe_path"
    assert list(outside.iterdir()) == []
    assert snapshot_entries(hf_env) == []  # checked before the first write: no link without its ref


def test_a_partial_file_linked_outside_the_cache_is_not_written_through(hub, hf_env, tmp_path):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    blobs = RepoPaths.for_repo(REPO).blobs
    blobs.mkdir(parents=True)
    (blobs / (hashlib.sha256(content).hexdigest() + PARTIAL_SUFFIX)).symlink_to(victim)

    download = pull()

    assert download.status == Download.Status.FAILED
    assert download.error_code == "unsafe_path"
    assert victim.read_bytes() == b"keep me"


def test_the_downloader_refuses_a_commit_that_is_not_a_folder_name_even_if_handed_one(hub, hf_env, tmp_path):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    before = walk(tmp_path)
    remote = RemoteFile(
        repo=REPO,
        filename=FILE,
        revision="main",
        commit=ESCAPE,
        etag=hashlib.sha256(content).hexdigest(),
        size=SIZE,
        url=hub.url(REPO, FILE),
        headers={},
    )
    with pytest.raises(downloader.HubError) as raised:
        downloader.fetch(remote, report=lambda progress: True)
    assert raised.value.code == "unsafe_path"
    assert_nothing_escaped(before, tmp_path, hf_env)


def test_publish_refuses_an_etag_that_leaves_the_blobs_folder(hf_env, tmp_path):
    verified = tmp_path / "verified.bin"
    verified.write_bytes(b"GGUF")
    with pytest.raises(UnsafePath):
        cache.publish(repo=REPO, filename=FILE, revision="main", commit="0" * 40, etag=ESCAPE, verified_file=verified)
    assert verified.exists()
    assert not (tmp_path / "outside").exists()
