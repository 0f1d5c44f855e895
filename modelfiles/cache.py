"""The standard Hugging Face cache layout, read and written the way huggingface_hub does it.

`$HF_HOME/hub/models--{owner}--{name}/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>,
refs/<revision>}` and `$HF_HOME/hub/.locks/models--{owner}--{name}/<etag>.lock`. Everything we write lands with
an atomic rename, so a reader (huggingface_hub, llama.cpp, the scanner) never sees half a file or half a link.

Every path we write is resolved and checked to lie inside the repo's folder (the lock inside the hub's `.locks`
folder) before anything is written, even though the Hub's etag and commit were validated already: a symlink
planted in the cache or a name that slipped through must not make the worker write elsewhere. Files and folders
are created with the process umask (0644/0755 under the usual 022), as huggingface_hub does, so other users of a
shared cache can read them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

COMMIT_RE = re.compile(r"[0-9a-f]{40}")
# Our own suffix: `hf cache prune` removes `*.incomplete`, and a partial file must survive until it is resumed.
PARTIAL_SUFFIX = ".modeldesk-partial"
# Beside a partial file fetched as several byte ranges: how far each range got (downloader.py), so a restarted
# worker continues each of them; without it the partial file is taken as one prefix, as a single stream writes it.
RANGES_SUFFIX = ".modeldesk-ranges"


def hub_dir() -> Path:
    """`$HF_HUB_CACHE`, else `$HF_HOME/hub`, read at call time so tests and commands can point elsewhere."""
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("HF_HOME") or settings.HF_HOME) / "hub"


def repo_folder_name(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


class UnsafePath(ValueError):
    """A path we were about to write resolves outside the folder it belongs in."""


def _inside(real: Path, base: Path) -> bool:
    return real != base and real.is_relative_to(base)


def contained(path: Path, folder: Path, *, within: Path, follow: bool) -> Path:
    """`path` resolved, when it lies strictly inside `folder` and `folder` inside `within` (all resolved).

    With `follow`, a symlink at `path` itself is followed (for files we open and write through); without, only
    its parent is resolved (for names we replace atomically, which never write through a link). `within` catches
    a folder that is itself a link to elsewhere.
    """
    if path.name in ("", ".", ".."):
        raise UnsafePath(f"Refusing to write {path}: not a file name.")
    outer = within.resolve()
    base = folder.resolve()
    if base != outer and not _inside(base, outer):
        raise UnsafePath(f"Refusing to write into {folder}: it resolves to {base}, outside {outer}.")
    real = path.resolve() if follow else path.parent.resolve() / path.name
    if not _inside(real, base):
        raise UnsafePath(f"Refusing to write {path}: it resolves to {real}, outside {base}.")
    return real


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

    def ranges(self, etag: str) -> Path:
        return self.blobs / (etag + RANGES_SUFFIX)

    def snapshot_file(self, commit: str, filename: str) -> Path:
        return self.root / "snapshots" / commit / filename

    def ref(self, revision: str) -> Path:
        return self.root / "refs" / revision

    def lock(self, etag: str) -> Path:
        return self.locks / f"{etag}.lock"

    @property
    def locks(self) -> Path:
        return hub_dir() / ".locks" / repo_folder_name(self.repo)

    def check_root(self) -> None:
        """The repo folder is a direct child of the hub folder, also once links are resolved."""
        hub = hub_dir()
        if self.root.parent != hub or self.root.name in ("", ".", "..") or "/" in self.root.name:
            raise UnsafePath(f"Refusing to write {self.root}: not a folder of {hub}.")
        contained(self.root, hub, within=hub, follow=True)

    def checked_blob(self, etag: str) -> Path:
        self.check_root()
        return contained(self.blob(etag), self.blobs, within=self.root, follow=True)

    def checked_partial(self, etag: str) -> Path:
        self.check_root()
        return contained(self.partial(etag), self.blobs, within=self.root, follow=True)

    def checked_ranges(self, etag: str) -> Path:
        self.check_root()
        return contained(self.ranges(etag), self.blobs, within=self.root, follow=True)

    def checked_snapshot_file(self, commit: str, filename: str) -> Path:
        self.check_root()
        snapshots = self.root / "snapshots"
        contained(snapshots / commit, snapshots, within=self.root, follow=True)
        return contained(self.snapshot_file(commit, filename), snapshots / commit, within=self.root, follow=False)

    def checked_ref(self, revision: str) -> Path:
        self.check_root()
        return contained(self.ref(revision), self.root / "refs", within=self.root, follow=False)

    def checked_lock(self, etag: str) -> Path:
        hub = hub_dir()
        contained(self.locks, hub / ".locks", within=hub, follow=True)
        return contained(self.lock(etag), self.locks, within=hub / ".locks", follow=True)


def resolve_revision(repo: str, revision: str) -> str | None:
    """The commit a revision points at locally, from `refs/`, or None when the cache does not know it."""
    if COMMIT_RE.fullmatch(revision):
        return revision
    try:
        commit = RepoPaths.for_repo(repo).ref(revision).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return commit if COMMIT_RE.fullmatch(commit) else None


def local_file(repo: str, filename: str, revision: str) -> Path | None:
    """The cached file for (repo, filename, revision) when it is complete locally; no network."""
    commit = resolve_revision(repo, revision)
    if commit is None:
        return None
    path = RepoPaths.for_repo(repo).snapshot_file(commit, filename)
    # exists() follows the link: a snapshot link whose blob was deleted does not count.
    return path if path.exists() else None


CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by ModelDesk for the Hugging Face cache.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def ensure_cachedir_tag() -> None:
    """`CACHEDIR.TAG` in the hub folder, as huggingface_hub writes it, so backup tools skip the cache."""
    root = hub_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / "CACHEDIR.TAG", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return
    except OSError:
        return  # a read-only cache still works; the tag only helps backups
    with os.fdopen(fd, "w") as handle:
        handle.write(CACHEDIR_TAG)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would lock other users of a shared cache out of the ref. os.open with 0666 lets the
    # process umask decide (0644 under 022), as for every other file huggingface_hub writes.
    tmp = path.with_name(f".tmp-{secrets.token_hex(8)}.ref")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    # Short and fixed-length: a link name near the 255-byte limit must still leave room for its temporary name.
    tmp = link.with_name(f".tmp-{secrets.token_hex(8)}.link")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(*, repo: str, filename: str, revision: str, commit: str, etag: str, verified_file: Path) -> Path:
    """Move a verified file into `blobs/<etag>`, link it from the snapshot and record the ref.

    The order matters: blob first, then the snapshot link, then the ref, so anyone who can see the ref or
    the link finds a complete blob behind it. Every destination is checked before the first write, so a refused
    path leaves nothing half-done.
    """
    paths = RepoPaths.for_repo(repo)
    blob = paths.checked_blob(etag)
    link = paths.checked_snapshot_file(commit, filename)
    ref = paths.checked_ref(revision) if revision != commit else None
    if verified_file != paths.blob(etag):
        contained(verified_file, paths.blobs, within=paths.root, follow=True)
        os.replace(verified_file, blob)
    depth = len(Path(filename).parts) - 1
    target = "/".join([".."] * (2 + depth) + ["blobs", etag])
    _atomic_symlink(target, link)
    if ref is not None:
        _atomic_write_text(ref, commit)
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

    @property
    def path(self) -> str:
        """Where it is, relative to the hub folder, as the scan report names paths."""
        return f"{repo_folder_name(self.repo)}/snapshots/{self.snapshot}/{self.filename}"


@dataclass(frozen=True)
class Skipped:
    """A cache entry the scan could not list: its path relative to the hub folder (printable) and why."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class GgufScan:
    files: list[CachedGguf] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


REPO_PREFIX = "models--"
# A path segment longer than this many bytes cannot exist on the usual file systems (ext4, xfs, btrfs, zfs).
SEGMENT_MAX_BYTES = 255
# Names our own writers use for a moment before an atomic rename; never a problem worth reporting.
_TEMPORARY_PREFIX = ".tmp-"
_ETAG_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def shown(text: str) -> str:
    """A name from the disk as text anyone can read: undecodable bytes as \\xNN, control characters escaped."""
    decoded = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if decoded.isprintable():  # nearly every name: no per-character pass
        return decoded
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in decoded)


def name_problem(name: str) -> str | None:
    """Why a name from the disk (a path relative to a snapshot, or a ref) cannot be stored and shown, or None."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if "\\" in name:
        return "the name holds a backslash"
    if not name.isprintable():  # the space counts as printable
        return "the name holds control or other non-printable characters"
    if len(encoded) > SEGMENT_MAX_BYTES and any(
        len(segment.encode("utf-8")) > SEGMENT_MAX_BYTES for segment in name.split("/")
    ):
        return f"a part of the name is longer than {SEGMENT_MAX_BYTES} bytes"
    if len(encoded) > 4096:
        return "the name is too long"
    return None


_TRAILING_JUNK = "".join(chr(code) for code in range(33)) + "\x7f"


def _is_gguf_name(name: str) -> bool:
    # Lenient on purpose: `x.gguf\n` or `x.GGUF ` are GGUF files someone meant to keep, so they are reported.
    return name.rstrip(_TRAILING_JUNK).lower().endswith(".gguf")


def scan_gguf(*, repo: str | None = None) -> GgufScan:
    """Every GGUF file in the cache's model repos (or in one repo), and every entry that could not be listed.

    The same layout huggingface_hub's scan_cache_dir reads, walked here entry by entry: scan_cache_dir gives up on
    a whole repo for one broken link and raises out of the whole scan for one unreadable ref, while here one bad
    entry is skipped and reported and the rest lands. Read-only; links are not followed into folders.
    """
    scan = GgufScan()
    root = hub_dir()
    if not root.is_dir():
        return scan
    if repo is not None:
        folders = [root / repo_folder_name(repo)]
    else:
        try:
            names = sorted(os.listdir(root))
        except OSError as exc:
            scan.skipped.append(Skipped(".", f"the cache folder cannot be read ({exc.strerror or exc})"))
            return scan
        folders = [root / name for name in names if name.startswith(REPO_PREFIX)]
    for folder in folders:
        if not os.path.lexists(folder):
            continue
        try:
            _scan_repo(folder, scan)
        except OSError as exc:
            scan.skipped.append(Skipped(shown(folder.name), f"the repo folder cannot be read ({exc.strerror or exc})"))
    return scan


def _scan_repo(folder: Path, scan: GgufScan) -> None:
    from aliases.validators import repo_problem

    name = folder.name
    where = shown(name)
    if not folder.is_dir():
        scan.skipped.append(Skipped(where, "not a folder"))
        return
    repo_id = name[len(REPO_PREFIX) :].replace("--", "/")
    problem = name_problem(repo_id) or repo_problem(repo_id)
    if problem:
        scan.skipped.append(Skipped(where, f"the folder name is not a valid repo id owner/name: {problem}"))
        return
    refs = _read_refs(folder / "refs", where, scan)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return  # a download in progress: blobs first, the snapshot once verified
    for commit in sorted(os.listdir(snapshots)):
        if commit.startswith("."):
            continue
        path = snapshots / commit
        if not COMMIT_RE.fullmatch(commit):
            scan.skipped.append(
                Skipped(f"{where}/snapshots/{shown(commit)}", "not a 40-hex commit, as snapshot folders are named")
            )
            continue
        if not path.is_dir() or path.is_symlink():
            scan.skipped.append(Skipped(f"{where}/snapshots/{commit}", "not a folder"))
            continue
        try:
            _scan_snapshot(repo_id, commit, path, tuple(sorted(refs.get(commit, ()))), where, scan)
        except OSError as exc:
            scan.skipped.append(Skipped(f"{where}/snapshots/{commit}", f"cannot be read ({exc.strerror or exc})"))


def _read_refs(folder: Path, where: str, scan: GgufScan) -> dict[str, set[str]]:
    by_commit: dict[str, set[str]] = {}
    if not folder.is_dir():
        return by_commit
    for parent, _dirs, files in os.walk(folder):
        for file in files:
            path = Path(parent, file)
            ref = path.relative_to(folder).as_posix()
            if file.startswith(_TEMPORARY_PREFIX):
                continue
            shown_path = f"{where}/refs/{shown(ref)}"
            problem = name_problem(ref)
            if problem:
                scan.skipped.append(Skipped(shown_path, problem))
                continue
            try:
                commit = path.read_bytes()[:100].decode("ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not text"
                scan.skipped.append(Skipped(shown_path, f"the ref cannot be read ({reason})"))
                continue
            if not COMMIT_RE.fullmatch(commit):
                scan.skipped.append(Skipped(shown_path, "the ref does not hold a 40-hex commit"))
                continue
            by_commit.setdefault(commit, set()).add(ref)
    return by_commit


def _scan_snapshot(repo_id: str, commit: str, folder: Path, refs: tuple[str, ...], where: str, scan: GgufScan) -> None:
    # Plain strings and os calls, not pathlib, in this loop: it runs once per file of the cache, and Path objects
    # cost more than the system calls (`relative` is what Path.relative_to(...).as_posix() gives on POSIX).
    top = os.fspath(folder)
    cut = len(top) + 1
    for parent, dirs, files in os.walk(top):
        dirs.sort()
        for file in sorted(files):
            if file.startswith(_TEMPORARY_PREFIX) or not _is_gguf_name(file):
                continue
            path = os.path.join(parent, file)
            relative = path[cut:]
            shown_path = f"{where}/snapshots/{commit}/{shown(relative)}"
            problem = name_problem(relative)
            if problem is None and not relative.lower().endswith(".gguf"):
                problem = "the name does not end in .gguf"
            if problem:
                scan.skipped.append(Skipped(shown_path, problem))
                continue
            blob = path
            try:
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    # The first hop, as huggingface_hub's scanner: the blob this snapshot entry names.
                    blob = os.path.abspath(os.path.join(parent, os.readlink(path)))
                    info = os.stat(blob)
            except FileNotFoundError:
                name = os.path.basename(blob)
                scan.skipped.append(Skipped(shown_path, f"broken link: its blob {shown(name)} is missing"))
                continue
            except OSError as exc:
                scan.skipped.append(Skipped(shown_path, f"its blob cannot be read ({exc.strerror or exc})"))
                continue
            if not stat.S_ISREG(info.st_mode):
                scan.skipped.append(Skipped(shown_path, "its blob is not a regular file"))
                continue
            etag = os.path.basename(blob)
            scan.files.append(
                CachedGguf(
                    repo=repo_id,
                    filename=relative,
                    snapshot=commit,
                    refs=refs,
                    size=info.st_size,
                    etag=etag if _ETAG_RE.fullmatch(etag) else "",
                    modified_at=datetime.fromtimestamp(info.st_mtime, tz=UTC),
                )
            )


def write_ref(repo: str, ref: str, commit: str) -> None:
    """Point `refs/<ref>` at `commit`, atomically (an update moving a branch or tag to a newer commit)."""
    _atomic_write_text(RepoPaths.for_repo(repo).checked_ref(ref), commit)


def snapshot_blob(repo: str, filename: str, commit: str) -> Path:
    """The file a snapshot entry holds (its blob, the link followed), checked to lie inside the repo's folder."""
    paths = RepoPaths.for_repo(repo)
    paths.check_root()
    snapshots = paths.root / "snapshots"
    contained(snapshots / commit, snapshots, within=paths.root, follow=True)
    return contained(paths.snapshot_file(commit, filename), paths.root, within=hub_dir(), follow=True)
