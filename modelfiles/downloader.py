"""The byte transfer: resumable, verified, throttled progress, safe to kill at any moment.

huggingface_hub restarts from byte 0 in a new process, so the transfer is our own: bytes go to
`blobs/<etag>.modeldesk-partial`, which survives a killed worker and is continued with an HTTP Range request.
The etag says what the bytes must hash to: a sha256 for LFS files, the git blob sha1 (sha1 over
`b"blob <size>\0" + content`) for files kept in git. That hash is computed while the bytes arrive (and over the
kept part on resume) and compared before the file is moved to `blobs/<etag>` and linked from the snapshot.
Nothing appears in the snapshot before that, so a reader never sees a partial or unverified file.

No database here: the caller passes `report`, called about once a second, which returns False to stop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import mmap
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from filelock import FileLock, Timeout

from config.formatting import human_bytes
from modelfiles.cache import RepoPaths, UnsafePath, ensure_cachedir_tag, free_bytes, publish
from modelfiles.hub import HubError, RemoteFile

CHUNK = 4 * 1024 * 1024
# Room left free for the database, logs and the rest of the machine.
DISK_RESERVE = int(os.environ.get("MODELDESK_DISK_RESERVE_BYTES", str(64 * 1024 * 1024)))
STALL_SECONDS = float(os.environ.get("MODELDESK_STALL_SECONDS", "30"))
REPORT_EVERY = 1.0
SPEED_WINDOW = 5.0


@dataclass(frozen=True)
class Progress:
    bytes_done: int
    bytes_total: int | None
    speed: float | None
    eta: float | None


Reporter = Callable[[Progress], bool]

# What `Fetched.verified` can say: the hash that was compared with the Hub's before the file became visible.
VERIFIED_SHA256 = "sha256"
VERIFIED_GIT_SHA1 = "git-sha1"


@dataclass(frozen=True)
class Fetched:
    path: Path  # the snapshot path
    verified: str  # VERIFIED_SHA256 or VERIFIED_GIT_SHA1


@dataclass(frozen=True)
class Digests:
    sha256: str
    git_sha1: str | None  # None when the git hash was not asked for


def _git_header(size: int) -> bytes:
    return b"blob %d\0" % size


class Stopped(Exception):
    """The caller asked the transfer to stop (cancel, or the download was taken over); the partial file stays."""


class _SpeedMeter:
    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float | None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW:
            self.samples.popleft()
        first_time, first_done = self.samples[0]
        if now - first_time < 0.2:
            return None
        return (done - first_done) / (now - first_time)


class _FileHasher:
    """sha256 (and, when asked, the git blob sha1) of the partial file, on its own thread as the bytes land in it.

    It reads the file through mmap (no copy in Python; hashlib releases the GIL), so hashing overlaps with
    receiving. On resume the kept part is hashed the same way, from the start of the file. The git hash needs the
    final size up front (its header), so it is computed only when `git_size` is given.
    """

    # Mapped pages count toward the worker's RSS: a small window keeps its memory flat.
    WINDOW = 16 * 1024 * 1024

    def __init__(self, fd: int, *, written: int = 0, git_size: int | None = None) -> None:
        self._fd = fd
        self._sha = hashlib.sha256()
        self._git: hashlib._Hash | None = None
        if git_size is not None:
            self._git = hashlib.sha1(_git_header(git_size), usedforsecurity=False)
        self._written = written
        self._hashed = 0
        self._closed = False
        self._abandoned = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)

    def __enter__(self) -> _FileHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        with self._cond:
            self._abandoned = True
            self._cond.notify()
        self._thread.join()

    def advance(self, written: int) -> None:
        """The first `written` bytes of the file are final."""
        with self._cond:
            self._written = written
            self._cond.notify()

    @property
    def hashed(self) -> int:
        """How many bytes from the start are hashed so far (read from another thread: progress only)."""
        return self._hashed

    def wait(self, timeout: float) -> bool:
        """No more bytes will come: True once every byte given is hashed (digests() then answers at once)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def digests(self) -> Digests:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return Digests(self._sha.hexdigest(), self._git.hexdigest() if self._git is not None else None)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._hashed >= self._written and not (self._closed or self._abandoned):
                        self._cond.wait()
                    if self._abandoned or (self._closed and self._hashed >= self._written):
                        return
                    target = self._written
                while self._hashed < target:
                    if self._abandoned:
                        return  # a stopped verification must not go on reading a 50 GB file
                    start = self._hashed - self._hashed % mmap.ALLOCATIONGRANULARITY
                    end = min(target, start + self.WINDOW)
                    with (
                        mmap.mmap(self._fd, end - start, offset=start, access=mmap.ACCESS_READ) as mapped,
                        memoryview(mapped) as view,
                        view[self._hashed - start :] as piece,
                    ):
                        self._sha.update(piece)
                        if self._git is not None:
                            self._git.update(piece)
                    self._hashed = end
        except BaseException as exc:  # reported by digests(), not lost with the thread
            self._error = exc


def _open(
    url: str, headers: dict[str, str], timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """GET `url`, following up to 5 redirects; the token is dropped when a redirect leaves the host."""
    origin = urlsplit(url).netloc
    for _ in range(6):
        parts = urlsplit(url)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
            )
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        else:
            raise HubError("hub_error", f"Unsupported download URL scheme {parts.scheme!r}.", transient=False)
        send = dict(headers)
        if parts.netloc != origin:
            send = {k: v for k, v in send.items() if k.lower() != "authorization"}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path or "/", headers=send)
        response = conn.getresponse()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urljoin(url, response.getheader("Location"))
            response.read()
            conn.close()
            continue
        return conn, response
    raise HubError("hub_error", "Too many redirects while downloading.", transient=True)


def _disk_full(needed: int, free: int, done: int = 0) -> HubError:
    return HubError(
        "disk_full",
        f"Not enough disk space for the model cache: need {human_bytes(needed)}, free {human_bytes(free)}"
        + (f" (stopped after {human_bytes(done)})" if done else "")
        + ". Free some space (delete unused model files) and retry.",
        transient=False,
    )


def fetch(
    remote: RemoteFile,
    *,
    report: Reporter,
    stall_seconds: float | None = None,
    thread_exit: Callable[[], None] | None = None,
    discard: Callable[[], bool] | None = None,
) -> Fetched:
    """Bring `remote` into the cache, verified; the snapshot path and what was checked. Raises HubError or Stopped.

    Safe to call again after any failure or kill: it continues from the partial file. `report` is called from
    a helper thread while bytes flow; `thread_exit` runs when that thread ends (e.g. to close its DB connection).
    When `report` stops the transfer, `discard` is asked whether the partial file goes too (a cancel) or stays
    (a pause); it is deleted while the lock is still held, so no other transfer of the blob can have begun.
    """
    try:
        return _fetch(remote, report=report, stall_seconds=stall_seconds or STALL_SECONDS, thread_exit=thread_exit,
                      discard=discard)  # fmt: skip
    except UnsafePath as exc:
        raise HubError(
            "unsafe_path",
            f"{exc} The cache folder holds a link to elsewhere, or the Hub (HF_ENDPOINT) sent a name that is not "
            "a plain file name; nothing was written there.",
            transient=False,
        ) from exc


def _expected(remote: RemoteFile) -> tuple[str, str]:
    """(what to compare, the Hub's value): the sha256 for LFS files, else the git blob sha1."""
    if remote.sha256 is not None:
        return VERIFIED_SHA256, remote.sha256
    if remote.git_sha1 is not None:
        return VERIFIED_GIT_SHA1, remote.git_sha1
    # hub.file_metadata refuses any other etag; a RemoteFile made elsewhere gets the same answer.
    raise HubError("hub_bad_etag", f"Cannot verify a file whose etag is {remote.etag[:80]!r}.", transient=False)


def _fetch(remote: RemoteFile, *, report: Reporter, stall_seconds: float, thread_exit, discard) -> Fetched:
    kind, _ = _expected(remote)
    paths = RepoPaths.for_repo(remote.repo)
    # Checked before the first mkdir: a repo folder that is a link to elsewhere must not get folders made in it.
    blob = paths.checked_blob(remote.etag)
    partial = paths.checked_partial(remote.etag)
    lock_path = paths.checked_lock(remote.etag)
    paths.checked_snapshot_file(remote.commit, remote.filename)
    ensure_cachedir_tag()
    paths.blobs.mkdir(parents=True, exist_ok=True)
    # Another revision (or another tool) may have brought these bytes already: blobs are shared by etag. They are
    # checked again, so "verified" stays true of what is published now; a damaged blob is downloaded over.
    if (
        blob.is_file()
        and (remote.size is None or blob.stat().st_size == remote.size)
        and _matches(remote, _hash_file(blob, git=kind == VERIFIED_GIT_SHA1))
    ):
        return Fetched(_publish(remote, blob), kind)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=10)
    except Timeout as exc:
        raise HubError(
            "busy", "Another process is writing this file right now; will try again.", transient=True
        ) from exc
    try:
        return _fetch_locked(
            remote, paths, partial, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
        )
    except Stopped:
        if discard is not None and discard():
            partial.unlink(missing_ok=True)
        raise
    finally:
        lock.release()


def partial_bytes(repo: str, etag: str) -> int:
    """The size of a blob's partial file: what the next transfer continues from (0 when there is none)."""
    try:
        return RepoPaths.for_repo(repo).checked_partial(etag).stat().st_size
    except (OSError, UnsafePath):
        return 0


def discard_partial(repo: str, etag: str) -> bool:
    """Delete the partial file of a blob, unless a transfer holds its lock now (that transfer is told to delete
    it as it stops, see `fetch`). True when no partial file of it is left."""
    paths = RepoPaths.for_repo(repo)
    try:
        partial = paths.checked_partial(etag)
        lock_path = paths.checked_lock(etag)
    except UnsafePath:
        return False
    if not partial.exists():
        return True
    if not lock_path.parent.is_dir():
        partial.unlink(missing_ok=True)
        return True
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        partial.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def _publish(remote: RemoteFile, verified_file: Path) -> Path:
    return publish(repo=remote.repo, filename=remote.filename, revision=remote.revision, commit=remote.commit,
                   etag=remote.etag, verified_file=verified_file)  # fmt: skip


def _matches(remote: RemoteFile, digests: Digests) -> bool:
    kind, expected = _expected(remote)
    return (digests.sha256 if kind == VERIFIED_SHA256 else digests.git_sha1) == expected


def _hash_file(path: Path, *, git: bool) -> Digests:
    size = path.stat().st_size
    sha = hashlib.sha256()
    git_sha = hashlib.sha1(_git_header(size), usedforsecurity=False) if git else None
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            sha.update(block)
            if git_sha is not None:
                git_sha.update(block)
    return Digests(sha.hexdigest(), git_sha.hexdigest() if git_sha is not None else None)


def _fetch_locked(
    remote: RemoteFile, paths: RepoPaths, partial: Path, *, report: Reporter, stall_seconds: float, thread_exit
) -> Fetched:
    kind, expected = _expected(remote)
    total = remote.size
    offset = partial.stat().st_size if partial.exists() else 0
    if total is not None and offset > total:
        partial.unlink()
        offset = 0

    if total is not None:
        needed = total - offset
        free = free_bytes(paths.blobs)
        if free - DISK_RESERVE < needed:
            raise _disk_full(needed + DISK_RESERVE, free)

    if not report(Progress(offset, total, None, None)):
        raise Stopped

    done, digests = _transfer(
        remote, partial, offset, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
    )

    if total is not None and done != total:
        raise HubError("size_mismatch", f"Received {done} bytes, expected {total}; will try again.", transient=True)
    if kind == VERIFIED_GIT_SHA1 and digests.git_sha1 is None:
        digests = _hash_file(partial, git=True)  # the size was unknown until the end: hash once more
    actual = digests.sha256 if kind == VERIFIED_SHA256 else digests.git_sha1
    if actual != expected:
        partial.unlink(missing_ok=True)
        name = "sha256" if kind == VERIFIED_SHA256 else "git blob sha1"
        raise HubError(
            "checksum_mismatch",
            f"The downloaded file's {name} ({actual[:16]}…) does not match the Hub's ({expected[:16]}…); the "
            "bytes were damaged on the way and were discarded. Retry; if it repeats, check proxies or the mirror.",
            transient=False,
        )
    return Fetched(_publish(remote, partial), kind)


def _transfer(
    remote: RemoteFile,
    partial: Path,
    offset: int,
    *,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> tuple[int, Digests]:
    """GET the rest of the file into `partial`; (bytes now in the file, hashes of the whole file)."""
    headers = dict(remote.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        conn, response = _open(remote.url, headers, timeout=stall_seconds + 5)
    except (OSError, http.client.HTTPException) as exc:
        raise HubError("network_error", f"Could not connect to download the file ({exc}); will try again.",
                       transient=True) from exc  # fmt: skip
    try:
        status = response.status
        if status == 416 and remote.size is not None and offset == remote.size:
            # Everything was already here: only the hash is left to do.
            return _stream(None, conn.sock, partial, offset, remote.size, git=remote.git_sha1 is not None,
                           report=report, stall_seconds=stall_seconds, thread_exit=thread_exit)  # fmt: skip
        if status == 416 or (status == 200 and offset):
            # The server will not continue our partial file: drop it and start over on the next attempt.
            partial.unlink(missing_ok=True)
            raise HubError("range_refused", "The server would not resume the download; starting over.",
                           transient=True)  # fmt: skip
        if status == 429 or status >= 500:
            raise HubError("hub_unavailable", f"The download server answered {status}; will try again.", transient=True)
        if status not in (200, 206):
            raise HubError("download_refused", f"The download server answered {status}.", transient=False)
        if status == 206:
            content_range = response.getheader("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise HubError("range_mismatch", f"Unexpected Content-Range {content_range!r}.", transient=True)
        return _stream(response, conn.sock, partial, offset, remote.size, git=remote.git_sha1 is not None,
                       report=report, stall_seconds=stall_seconds, thread_exit=thread_exit)  # fmt: skip
    finally:
        conn.close()


class _Watchdog:
    """Reports progress about once a second from its own thread, and cuts the connection on a cancel or a stall.

    The reading loop stays tight and never waits on the database; a blocked read is ended by shutting the socket.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        offset: int,
        total: int | None,
        report: Reporter,
        stall_seconds: float,
        thread_exit: Callable[[], None] | None,
    ):
        self.sock = sock
        self.thread_exit = thread_exit
        self.done = offset
        self.total = total
        self.report = report
        self.stall_seconds = stall_seconds
        self.stopped = False
        self.stalled = False
        self.error: BaseException | None = None
        self._finish = threading.Event()
        self._meter = _SpeedMeter()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._meter.add(time.monotonic(), self.done)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._finish.set()
        self._thread.join()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        last_done, last_change = self.done, time.monotonic()
        try:
            while not self._finish.wait(REPORT_EVERY):
                now, done = time.monotonic(), self.done
                if done != last_done:
                    last_done, last_change = done, now
                elif now - last_change >= self.stall_seconds:
                    self.stalled = True
                    self._cut()
                    return
                speed = self._meter.add(now, done)
                eta = (self.total - done) / speed if speed and self.total is not None else None
                if not self.report(Progress(done, self.total, speed, eta)):
                    self.stopped = True
                    self._cut()
                    return
        except BaseException as exc:  # a failing report must end the transfer, not vanish with the thread
            self.error = exc
            self._cut()
        finally:
            if self.thread_exit is not None:
                self.thread_exit()


def _stream(
    response: http.client.HTTPResponse | None,
    sock: socket.socket,
    partial: Path,
    offset: int,
    total: int | None,
    *,
    git: bool,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> tuple[int, Digests]:
    """Copy the body into the partial file as it arrives, hashing it on the way; (bytes, hashes)."""
    # 0666 and the umask decide the mode (0644 under 022), as huggingface_hub's blobs; never through a link.
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | (0 if offset else os.O_TRUNC)
    fd = os.open(partial, flags, 0o666)
    with (
        os.fdopen(fd, "r+b", buffering=0) as handle,
        _FileHasher(fd, written=offset, git_size=total if git else None) as hasher,
        _Watchdog(
            sock, offset=offset, total=total, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
        ) as watchdog,
    ):
        handle.seek(offset)
        pump = _Pump(handle, hasher, watchdog, done=offset, total=total)
        failure: BaseException | None = None
        if response is not None:
            try:
                pump.read(response)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    partial.unlink(missing_ok=True)
                    raise _disk_full((total or pump.done) - pump.done, free_bytes(partial.parent), pump.done) from exc
                failure = exc
            except http.client.HTTPException as exc:
                failure = exc
        if watchdog.error is not None:
            raise watchdog.error
        if watchdog.stopped:
            raise Stopped
        if watchdog.stalled:
            raise HubError("stalled", f"No bytes arrived for {stall_seconds:.0f} s; resuming.", transient=True)
        if failure is not None:
            raise HubError("connection_lost", f"The connection dropped ({type(failure).__name__}); resuming.",
                           transient=True) from failure  # fmt: skip
        done = pump.done
        if total is not None and done < total:
            raise HubError("connection_lost", f"The connection closed after {human_bytes(done)}; resuming.",
                           transient=True)  # fmt: skip
        hasher.advance(done)
        return done, hasher.digests()


class _Pump:
    """Moves the body into the file and tells the hasher and the watchdog how far it got."""

    HASH_STEP = 1024 * 1024

    def __init__(self, handle, hasher: _FileHasher, watchdog: _Watchdog, *, done: int, total: int | None):
        self.handle = handle
        self.hasher = hasher
        self.watchdog = watchdog
        self.done = done
        self.total = total
        self._told_hasher = done

    def _moved(self, count: int) -> None:
        self.done += count
        self.watchdog.done = self.done
        if self.done - self._told_hasher >= self.HASH_STEP:
            self.hasher.advance(self.done)
            self._told_hasher = self.done

    def _write(self, view: memoryview) -> None:
        while view:
            written = self.handle.write(view)
            view = view[written:]

    def read(self, response: http.client.HTTPResponse) -> None:
        """Through user space, one receive at a time, so progress and cancel follow the bytes on slow links."""
        remaining = response.length if not response.chunked else None
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while remaining is None or remaining > 0:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            if remaining is not None:
                count = response.fp.readinto1(view[:want])
            else:
                block = response.read1(want)
                count = len(block)
                view[:count] = block
            if not count:
                return
            self._write(view[:count])
            self._moved(count)
            if remaining is not None:
                remaining -= count


def hash_file(path: Path, *, git: bool, report: Reporter | None = None) -> Digests:
    """sha256 (and, with `git`, the git blob sha1) of a file already on disk, the way downloads hash theirs.

    `report` is called about once a second with the progress and returns False to stop (raises Stopped).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        meter = _SpeedMeter()
        with _FileHasher(fd, written=size, git_size=size if git else None) as hasher:
            meter.add(time.monotonic(), 0)
            while not hasher.wait(REPORT_EVERY):
                now, done = time.monotonic(), hasher.hashed
                speed = meter.add(now, done)
                eta = (size - done) / speed if speed else None
                if report is not None and not report(Progress(done, size, speed, eta)):
                    raise Stopped
            digests = hasher.digests()
        if report is not None:
            report(Progress(size, size, None, None))
        return digests
    finally:
        os.close(fd)
