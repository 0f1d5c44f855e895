"""Deleting model files and cleaning up the Hugging Face cache: the file-system part, no database in sight.

Whole revisions go through huggingface_hub's own cache deletion (`scan_cache_dir(...).delete_revisions(...)`),
so the cache stays the way `hf cache verify` and `scan_cache_dir` expect it. One file of a snapshot that holds
others is removed here the same way: the snapshot link, then its blob only when no other snapshot links to it.

What active downloads hold (their partial blob, their lock, the repo folder they write into) is passed in as a
`Protected` by the caller (modelfiles.services reads it from the Download rows) and never touched. A lock file is
also left alone while any process holds it (`hf download`, another worker), which a non-blocking flock tells.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.utils import CacheNotFound, DeleteCacheStrategy, HFCacheInfo

from modelfiles.cache import COMMIT_RE, PARTIAL_SUFFIX, RANGES_SUFFIX, REPO_PREFIX, hub_dir, repo_folder_name, shown

# The kinds of cleanup candidates, in the order the storage page lists them.
UNUSED_FILE = "unused_file"
PARTIAL = "partial"
UNREFERENCED_REVISION = "unreferenced_revision"
NO_EXIST = "no_exist"
LOCK = "lock"
KINDS = {
    PARTIAL: "Partial downloads that are not active",
    UNREFERENCED_REVISION: "Revisions no ref points at and no alias is pinned to",
    NO_EXIST: "Remembered 404s (.no_exist folders)",
    LOCK: "Stale lock files",
    UNUSED_FILE: "Model files no alias uses",
}
# Leftovers are removed by default; a model file nobody uses yet is still a model someone pulled on purpose.
DEFAULT_KINDS = (PARTIAL, UNREFERENCED_REVISION, NO_EXIST, LOCK)


@dataclass(frozen=True)
class Protected:
    """What active downloads hold: their blobs' etags per repo, and repos where one has no etag yet (its partial
    file cannot be told apart from the others, so every partial and lock of that repo stays)."""

    etags: dict[str, set[str]] = field(default_factory=dict)
    whole_repos: set[str] = field(default_factory=set)
    commits: set[tuple[str, str]] = field(default_factory=set)  # (repo, commit) a download publishes into
    files: set[tuple[str, str]] = field(default_factory=set)  # (repo, filename) being downloaded

    def writes(self, repo: str, filename: str, commit: str) -> bool:
        """Whether an active download may be writing this file of this snapshot (its commit may not be known)."""
        return (repo, filename) in self.files and ((repo, commit) in self.commits or repo in self.whole_repos)

    def holds(self, repo: str, etag: str) -> bool:
        return repo in self.whole_repos or etag in self.etags.get(repo, ())

    def repo_busy(self, repo: str) -> bool:
        return repo in self.whole_repos or bool(self.etags.get(repo))


@dataclass(frozen=True)
class Candidate:
    """Something cleanup may remove: `path` relative to the hub folder, the bytes it frees."""

    kind: str
    repo: str
    path: str
    size: int
    detail: str = ""
    commit: str = ""
    filename: str = ""

    @property
    def shown_path(self) -> str:
        """The path as text anyone can read (a name from the disk may hold undecodable bytes)."""
        return shown(self.path)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "repo": shown(self.repo), "path": self.shown_path, "size": self.size}


@dataclass
class RepoUsage:
    repo: str
    size: int = 0  # every byte in blobs/, partial files included
    partial_size: int = 0
    revisions: int = 0

    @property
    def shown_repo(self) -> str:
        return shown(self.repo)


@dataclass
class Removal:
    """What a deletion or cleanup run removed (paths relative to the hub folder) and what it had to leave."""

    removed: list[str] = field(default_factory=list)
    freed: int = 0
    kept: list[str] = field(default_factory=list)  # candidates found busy or gone when their turn came

    def merge(self, other: Removal) -> None:
        self.removed += other.removed
        self.freed += other.freed
        self.kept += other.kept


class BusyFile(Exception):
    """The file is being written by an active download."""


# --- reading the cache ---------------------------------------------------------------------------------------------


def _relative(path: Path) -> str:
    try:
        return path.relative_to(hub_dir()).as_posix()
    except ValueError:
        return path.as_posix()


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _listdir(folder: Path) -> list[str]:
    """The names in a folder, sorted; none when it cannot be read (a page must not fail on one odd folder)."""
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _real_folder(path: Path) -> bool:
    """A folder and not a link to one: nothing is ever removed through a link planted in the cache."""
    return path.is_dir() and not path.is_symlink()


def _tree_size(folder: Path) -> int:
    total = 0
    for parent, _dirs, files in os.walk(folder):
        total += sum(_size(Path(parent, name)) for name in files)
    return total


def _snapshot_links(root: Path) -> dict[str, dict[str, str]]:
    """{commit: {path in the snapshot: blob name}} for the links of one repo folder (first hop, as huggingface_hub
    reads them); a regular file in a snapshot counts as its own blob, named by its path."""
    links: dict[str, dict[str, str]] = {}
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return links
    for commit in _listdir(snapshots):
        folder = snapshots / commit
        if not folder.is_dir() or folder.is_symlink():
            continue
        entries: dict[str, str] = {}
        for parent, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(parent, name)
                relative = path.relative_to(folder).as_posix()
                if path.is_symlink():
                    entries[relative] = Path(os.path.abspath(path.parent / os.readlink(path))).name
                else:
                    entries[relative] = "snapshot:" + commit + "/" + relative
        links[commit] = entries
    return links


def _refs(root: Path) -> dict[str, set[str]]:
    """{commit: refs pointing at it}."""
    by_commit: dict[str, set[str]] = {}
    refs = root / "refs"
    if not refs.is_dir():
        return by_commit
    for parent, _dirs, files in os.walk(refs):
        for name in files:
            path = Path(parent, name)
            try:
                commit = path.read_text(errors="replace").strip()
            except OSError:
                continue
            by_commit.setdefault(commit, set()).add(path.relative_to(refs).as_posix())
    return by_commit


def repo_folders() -> list[tuple[str, Path]]:
    root = hub_dir()
    if not root.is_dir():
        return []
    folders = []
    for name in _listdir(root):
        path = root / name
        if name.startswith(REPO_PREFIX) and path.is_dir() and not path.is_symlink():
            folders.append((name[len(REPO_PREFIX) :].replace("--", "/"), path))
    return folders


def usage() -> list[RepoUsage]:
    """Bytes per repo folder, largest first: every blob counted once (snapshots only link to them)."""
    rows = []
    for repo, root in repo_folders():
        row = RepoUsage(repo=repo)
        blobs = root / "blobs"
        if blobs.is_dir():
            for name in _listdir(blobs):
                size = _size(blobs / name)
                row.size += size
                if name.endswith(PARTIAL_SUFFIX):
                    row.partial_size += size
        row.revisions = len(_snapshot_links(root))
        rows.append(row)
    return sorted(rows, key=lambda row: (-row.size, row.repo))


def _freed_by(links: dict[str, dict[str, str]], root: Path, commit: str, paths: Iterable[str] | None = None) -> int:
    """Bytes freed by removing `paths` of snapshot `commit` (all of it when None): the blobs no other link keeps."""
    entries = links.get(commit, {})
    leaving = set(entries) if paths is None else set(paths)
    others = {
        blob
        for other, other_entries in links.items()
        for path, blob in other_entries.items()
        if other != commit or path not in leaving
    }
    freed = 0
    for path in leaving:
        blob = entries.get(path)
        if blob is None or blob in others:
            continue
        others.add(blob)  # two links of the leaving set to one blob: count it once
        if blob.startswith("snapshot:"):
            freed += _size(root / "snapshots" / commit / path)
        else:
            freed += _size(root / "blobs" / blob)
    return freed


def _lock_held(path: Path) -> bool:
    """Whether another process holds this lock file (huggingface_hub's filelock uses flock on it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our flock too
    return False


def candidates(
    *,
    protected: Protected,
    pinned: set[tuple[str, str]],
    used_files: set[tuple[str, str, str]],
    kinds: Iterable[str] = tuple(KINDS),
) -> list[Candidate]:
    """What cleanup could remove now, for the kinds asked.

    `pinned`: (repo, commit) of revisions an alias loads (so "no ref points at it" does not make them leftovers);
    `used_files`: (repo, filename, commit) of files an alias loads.
    """
    kinds = set(kinds)
    found: list[Candidate] = []
    for repo, root in repo_folders():
        links = _snapshot_links(root)
        refs = _refs(root)
        if PARTIAL in kinds and _real_folder(root / "blobs"):
            for name in _listdir(root / "blobs"):
                if not name.endswith(PARTIAL_SUFFIX):
                    continue
                if protected.holds(repo, name.removesuffix(PARTIAL_SUFFIX)):
                    continue
                path = root / "blobs" / name
                found.append(Candidate(PARTIAL, repo, _relative(path), _size(path), "partial download"))
        unreferenced = set()
        if UNREFERENCED_REVISION in kinds:
            for commit in links:
                if commit in refs or (repo, commit) in pinned or not COMMIT_RE.fullmatch(commit):
                    continue
                if any((repo, path, commit) in used_files for path in links[commit]):
                    continue
                if (repo, commit) in protected.commits:
                    continue
                unreferenced.add(commit)
                count = len(links[commit])
                found.append(
                    Candidate(
                        UNREFERENCED_REVISION,
                        repo,
                        _relative(root / "snapshots" / commit),
                        _freed_by(links, root, commit),
                        f"{count} file{'s' if count != 1 else ''}",
                        commit=commit,
                    )
                )
        if NO_EXIST in kinds and _real_folder(root / ".no_exist"):
            path = root / ".no_exist"
            entries = sum(len(files) for _parent, _dirs, files in os.walk(path))
            found.append(Candidate(NO_EXIST, repo, _relative(path), _tree_size(path), f"{entries} remembered 404s"))
        if UNUSED_FILE in kinds:
            for commit, entries in links.items():
                if commit in unreferenced:
                    continue  # the whole revision is listed already
                for path in sorted(entries):
                    if not path.lower().endswith(".gguf") or (repo, path, commit) in used_files:
                        continue
                    if (repo, path) in protected.files:
                        continue
                    found.append(
                        Candidate(
                            UNUSED_FILE,
                            repo,
                            _relative(root / "snapshots" / commit / path),
                            _freed_by(links, root, commit, [path]),
                            "no alias loads it",
                            commit=commit,
                            filename=path,
                        )
                    )
    if LOCK in kinds:
        found += _lock_candidates(protected)
    return found


def _lock_candidates(protected: Protected) -> list[Candidate]:
    found = []
    locks = hub_dir() / ".locks"
    if not _real_folder(locks):
        return found
    for folder in _listdir(locks):
        path = locks / folder
        if not folder.startswith(REPO_PREFIX) or not path.is_dir() or path.is_symlink():
            continue
        repo = folder[len(REPO_PREFIX) :].replace("--", "/")
        for name in _listdir(path):
            lock = path / name
            if not name.endswith(".lock") or protected.holds(repo, name.removesuffix(".lock")) or _lock_held(lock):
                continue
            found.append(Candidate(LOCK, repo, _relative(lock), _size(lock), "lock file no one holds"))
    return found


# --- removing ------------------------------------------------------------------------------------------------------


def hf_cache_info() -> HFCacheInfo | None:
    try:
        return scan_cache_dir(hub_dir())
    except CacheNotFound:
        return None


def _repo_info(repo: str):
    """huggingface_hub's view of the cache and of one repo in it; the repo is None when it could not read it (the
    repo is then among the scan's warnings)."""
    root = (hub_dir() / repo_folder_name(repo)).resolve()
    info = hf_cache_info()
    if info is None:
        return None, None
    repo_info = next((item for item in info.repos if item.repo_path.resolve() == root), None)
    if repo_info is None:
        return None, None
    # Narrowed to this repo: delete_revisions matches commits in every repo of the cache, and a fork or a copy of
    # a repo shares its commit hashes, so the same commit would go from the other repo too.
    only = dataclasses.replace(info, repos=frozenset({repo_info}), size_on_disk=repo_info.size_on_disk)
    return only, repo_info


def _delete_revisions(repo: str, commits: list[str], *, keep_repo_folder: bool) -> Removal:
    """Whole revisions, through huggingface_hub's strategy (snapshot folders, their refs, blobs no other revision
    links). When that would remove the whole repo folder but something there must stay (an active download's
    partial file), the same strategy is run without the folder removal: every revision goes, so every blob too."""
    removal = Removal()
    root = hub_dir() / repo_folder_name(repo)
    info, repo_info = _repo_info(repo)
    if repo_info is None:
        for commit in commits:
            links = _snapshot_links(root)
            removal.merge(_delete_paths(repo, commit, list(links.get(commit, {})), links=links))
        return removal
    strategy = info.delete_revisions(*commits)
    if strategy.repos and keep_repo_folder:
        revisions = [revision for revision in repo_info.revisions if revision.commit_hash in commits]
        strategy = DeleteCacheStrategy(
            expected_freed_size=strategy.expected_freed_size,
            blobs=frozenset(file.blob_path for revision in revisions for file in revision.files),
            refs=frozenset(root / "refs" / ref for revision in revisions for ref in revision.refs),
            repos=frozenset(),
            snapshots=frozenset(revision.snapshot_path for revision in revisions),
            cache_dir=strategy.cache_dir,
        )
    removal.freed += strategy.expected_freed_size
    removal.removed += [shown(_relative(path)) for path in sorted(strategy.repos | strategy.snapshots | strategy.blobs)]
    strategy.execute()
    return removal


def _delete_files(repo: str, commit: str, paths: list[str]) -> Removal:
    """Some files of a snapshot that holds others, through huggingface_hub's `delete_files` (the links, and each
    blob only when no other cached file links to it)."""
    root = hub_dir() / repo_folder_name(repo)
    info, repo_info = _repo_info(repo)
    if repo_info is None:
        return _delete_paths(repo, commit, paths, links=_snapshot_links(root))
    snapshot = root / "snapshots" / commit
    wanted = {snapshot / path for path in paths}
    files = [
        file
        for revision in repo_info.revisions
        if revision.commit_hash == commit
        for file in revision.files
        if file.file_path in wanted
    ]
    strategy = info.delete_files(*files)
    removal = Removal(freed=strategy.expected_freed_size)
    removal.removed += [shown(_relative(path)) for path in sorted(strategy.files | strategy.blobs)]
    strategy.execute()
    for path in paths:
        # Subfolders the file was in, when it was their last entry (huggingface_hub keeps them).
        parent = (snapshot / path).parent
        while parent != snapshot and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return removal


def _delete_paths(repo: str, commit: str, paths: list[str], *, links: dict[str, dict[str, str]]) -> Removal:
    """Some files of one snapshot: each link, then its blob when no other link (in any snapshot) keeps it.

    When the snapshot is left empty its folder and the refs pointing at it go too, as the revision would."""
    removal = Removal()
    root = hub_dir() / repo_folder_name(repo)
    snapshot = root / "snapshots" / commit
    removal.freed = _freed_by(links, root, commit, paths)
    entries = links.get(commit, {})
    leaving = set(paths)
    others = {
        blob for other, items in links.items() for path, blob in items.items() if other != commit or path not in leaving
    }
    for path in paths:
        link = snapshot / path
        blob = entries.get(path)
        link.unlink(missing_ok=True)
        removal.removed.append(shown(_relative(link)))
        if blob is not None and not blob.startswith("snapshot:") and blob not in others:
            (root / "blobs" / blob).unlink(missing_ok=True)
            removal.removed.append(shown(_relative(root / "blobs" / blob)))
        # Subfolders the file was in, when it was their last entry.
        parent = link.parent
        while parent != snapshot and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    if snapshot.is_dir() and not any(snapshot.iterdir()):
        snapshot.rmdir()
        for name in _refs(root).get(commit, ()):
            (root / "refs" / name).unlink(missing_ok=True)
    return removal


def delete_file(*, repo: str, filename: str, commits: list[str], protected: Protected) -> Removal:
    """One file from the given snapshots. A snapshot holding nothing else goes as a whole revision."""
    root = hub_dir() / repo_folder_name(repo)
    links = _snapshot_links(root)
    whole = [commit for commit in commits if set(links.get(commit, {})) == {filename}]
    removal = Removal()
    if whole:
        removal.merge(_delete_revisions(repo, whole, keep_repo_folder=_keeps_something(root, repo, protected)))
    for commit in commits:
        if commit in whole or filename not in links.get(commit, {}):
            continue
        removal.merge(_delete_files(repo, commit, [filename]))
    if _tidy_repo(root, repo, protected):
        removal.removed.append(shown(_relative(root)))
    return removal


def _keeps_something(root: Path, repo: str, protected: Protected) -> bool:
    """Whether the repo folder holds something a whole-folder removal must spare: an active download's files."""
    return protected.repo_busy(repo)


def _tidy_repo(root: Path, repo: str, protected: Protected) -> bool:
    """A repo folder left with no snapshot and nothing else in blobs/ goes, so no `snapshots` folder is missing
    (scan_cache_dir warns about a repo folder without one)."""
    if not _real_folder(root) or protected.repo_busy(repo):
        return False
    try:
        for folder in (root / "snapshots", root / "blobs"):
            if folder.is_dir() and any(folder.iterdir()):
                return False
        shutil.rmtree(root)
    except OSError:
        return False
    return True


def remove(chosen: list[Candidate], *, protected: Protected) -> Removal:
    """Remove the candidates of a plan. Whole revisions first, then single files still there, then the rest."""
    removal = Removal()
    revisions: dict[str, list[str]] = {}
    for item in chosen:
        if item.kind == UNREFERENCED_REVISION:
            revisions.setdefault(item.repo, []).append(item.commit)
    for repo, commits in revisions.items():
        root = hub_dir() / repo_folder_name(repo)
        removal.merge(_delete_revisions(repo, commits, keep_repo_folder=_keeps_something(root, repo, protected)))
    for item in chosen:
        try:
            removal.merge(_remove_one(item, protected=protected))
        except OSError as exc:
            # A read-only or odd entry: the rest of the run goes on, and the result says what stayed.
            removal.kept.append(f"{item.shown_path} ({exc.strerror or exc})")
    for repo, root in repo_folders():
        if _tidy_repo(root, repo, protected):
            removal.removed.append(shown(_relative(root)))
    return removal


def _remove_one(item: Candidate, *, protected: Protected) -> Removal:
    removal = Removal()
    path = hub_dir() / item.path
    if item.kind == UNUSED_FILE:
        if not os.path.lexists(path):
            removal.kept.append(item.shown_path)
            return removal
        return delete_file(repo=item.repo, filename=item.filename, commits=[item.commit], protected=protected)
    if item.kind == PARTIAL:
        if protected.holds(item.repo, path.name.removesuffix(PARTIAL_SUFFIX)) or not path.is_file():
            removal.kept.append(item.shown_path)
            return removal
        path.unlink(missing_ok=True)
        # How far each range of it got (downloader.py): nothing without the partial file.
        path.with_name(path.name.removesuffix(PARTIAL_SUFFIX) + RANGES_SUFFIX).unlink(missing_ok=True)
    elif item.kind == NO_EXIST:
        if not _real_folder(path):
            removal.kept.append(item.shown_path)
            return removal
        shutil.rmtree(path)
    elif item.kind == LOCK:
        if protected.holds(item.repo, path.name.removesuffix(".lock")) or _lock_held(path):
            removal.kept.append(item.shown_path)
            return removal
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the repo's lock folder, once empty
    else:
        return removal  # whole revisions went first, in remove()
    removal.removed.append(item.shown_path)
    removal.freed += item.size
    return removal
