"""The standard Hugging Face cache layout, read and written the way huggingface_hub does it.

`$HF_HOME/hub/models--{owner}--{name}/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>,
refs/<revision>}` and `$HF_HOME/hub/.locks/models--{owner}--{name}/<etag>.lock`. Everything we write lands with
an atomic rename, so a reader (huggingface_hub, llama.cpp, the scanner) never sees half a file or half a link.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Our own suffix: `hf cache prune` removes `*.incomplete`, and a partial file must survive until it is resumed.
PARTIAL_SUFFIX = ".modeldesk-partial"


def hub_dir() -> Path:
    """`$HF_HUB_CACHE`, else `$HF_HOME/hub`, read at call time so tests and commands can point elsewhere."""
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("HF_HOME") or settings.HF_HOME) / "hub"


def repo_folder_name(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


@dataclass(frozen=True)
class RepoPaths:
    repo: str
    root: Path

    @classmethod
    def for_repo(cls, repo: str) -> RepoPaths:
        return cls(repo=repo, root=hub_dir() / repo_folder_name(repo))

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    def blob(self, etag: str) -> Path:
        return self.blobs / etag

    def partial(self, etag: str) -> Path:
        return self.blobs / (etag + PARTIAL_SUFFIX)

    def snapshot_file(self, commit: str, filename: str) -> Path:
        return self.root / "snapshots" / commit / filename

    def ref(self, revision: str) -> Path:
        return self.root / "refs" / revision

    def lock(self, etag: str) -> Path:
        return hub_dir() / ".locks" / repo_folder_name(self.repo) / f"{etag}.lock"


def resolve_revision(repo: str, revision: str) -> str | None:
    """The commit a revision points at locally, from `refs/`, or None when the cache does not know it."""
    if COMMIT_RE.match(revision):
        return revision
    try:
        commit = RepoPaths.for_repo(repo).ref(revision).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return commit if COMMIT_RE.match(commit) else None


def local_file(repo: str, filename: str, revision: str) -> Path | None:
    """The cached file for (repo, filename, revision) when it is complete locally; no network."""
    commit = resolve_revision(repo, revision)
    if commit is None:
        return None
    path = RepoPaths.for_repo(repo).snapshot_file(commit, filename)
    # exists() follows the link: a snapshot link whose blob was deleted does not count.
    return path if path.exists() else None


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".ref")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".tmp-{os.getpid()}-{link.name}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def publish(*, repo: str, filename: str, revision: str, commit: str, etag: str, verified_file: Path) -> Path:
    """Move a verified file into `blobs/<etag>`, link it from the snapshot and record the ref.

    The order matters: blob first, then the snapshot link, then the ref, so anyone who can see the ref or
    the link finds a complete blob behind it.
    """
    paths = RepoPaths.for_repo(repo)
    blob = paths.blob(etag)
    if verified_file != blob:
        os.replace(verified_file, blob)
    link = paths.snapshot_file(commit, filename)
    depth = len(Path(filename).parts) - 1
    target = "/".join([".."] * (2 + depth) + ["blobs", etag])
    _atomic_symlink(target, link)
    if revision != commit:
        _atomic_write_text(paths.ref(revision), commit)
    return link


def free_bytes(path: Path) -> int:
    """Free space for an unprivileged writer on the volume holding `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return shutil.disk_usage(probe).free


def modified_at(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


@dataclass(frozen=True)
class CachedGguf:
    repo: str
    filename: str
    snapshot: str
    refs: tuple[str, ...]
    size: int
    etag: str
    modified_at: datetime


def scan_gguf(*, repo: str | None = None) -> list[CachedGguf]:
    """Every GGUF file in the cache's model repos (or in one repo), as huggingface_hub's scanner sees them."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    root = hub_dir()
    if not root.is_dir():
        return []
    try:
        info = scan_cache_dir(cache_dir=root)
    except CacheNotFound:
        return []
    found = []
    for cached_repo in info.repos:
        if cached_repo.repo_type != "model" or (repo is not None and cached_repo.repo_id != repo):
            continue
        for revision in cached_repo.revisions:
            for file in revision.files:
                relative = file.file_path.relative_to(revision.snapshot_path).as_posix()
                if not relative.lower().endswith(".gguf"):
                    continue
                found.append(
                    CachedGguf(
                        repo=cached_repo.repo_id,
                        filename=relative,
                        snapshot=revision.commit_hash,
                        refs=tuple(sorted(revision.refs)),
                        size=file.size_on_disk,
                        etag=file.blob_path.name,
                        modified_at=datetime.fromtimestamp(file.blob_last_modified, tz=UTC),
                    )
                )
    return found
