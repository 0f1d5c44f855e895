"""The byte transfer: resumable, verified, throttled progress, safe to kill at any moment.

huggingface_hub restarts from byte 0 in a new process, so the transfer is our own: bytes go to
`blobs/<etag>.modeldesk-partial`, which survives a killed worker and is continued with an HTTP Range request.
The etag says what the bytes must hash to: a sha256 for LFS files, the git blob sha1 (sha1 over
`b"blob <size>\0" + content`) for files kept in git. That hash is computed while the bytes arrive (and over the
kept part on resume) and compared before the file is moved to `blobs/<etag>` and linked from the snapshot.
Nothing appears in the snapshot before that, so a reader never sees a partial or unverified file.

Large files come as several byte ranges at once (`CONNECTIONS`, for files of `RANGE_MIN_BYTES` or more) when the
server answers a range request with 206: CDNs cap each connection, so one stream leaves most of a link idle. The
file is cut into pieces handed out in order; each connection writes its piece with `os.pwrite` into the one
partial file and `<etag>.modeldesk-ranges` beside it records how far each piece got (rewritten atomically every
few MB), so a restarted worker continues every piece where it was. Pieces go out in order, so the bytes from the
start that are complete grow steadily and are hashed as they grow: at the end only the last pieces are left to
hash. A fault in one piece (a dropped connection, a short or mis-framed body, a 5xx, a stall) retries that piece
only; the others go on. A server that answers the first range with 200 gets one stream, as before.

No database here: the caller passes `report`, called about once a second, which returns False to stop, and
optionally `rate_limit`, asked about once a second for the bytes a second this download may use (None: no limit),
shared by all its connections.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import mmap
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial as partial_function
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from filelock import FileLock, Timeout

from config.formatting import human_bytes
from modelfiles.cache import (
    PARTIAL_SUFFIX,
    RANGES_SUFFIX,
    RepoPaths,
    UnsafePath,
    ensure_cachedir_tag,
    free_bytes,
    publish,
)
from modelfiles.hub import HubError, RemoteFile

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
CHUNK = 4 * MiB
# Room left free for the database, logs and the rest of the machine.
DISK_RESERVE = int(os.environ.get("MODELDESK_DISK_RESERVE_BYTES", str(64 * 1024 * 1024)))
STALL_SECONDS = float(os.environ.get("MODELDESK_STALL_SECONDS", "30"))
REPORT_EVERY = 1.0
SPEED_WINDOW = 5.0


def _bounded_int(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {text!r}.")
    return value


# Connections per file. 8: a CDN that caps each connection still fills 8 times what one stream gets, and no
# server sees more than a browser's download manager would open.
CONNECTIONS = _bounded_int("MODELDESK_DOWNLOAD_CONNECTIONS", 8, 1, 16)
# Smaller files come in one stream: more connections would cost more requests than they win.
RANGE_MIN_BYTES = _bounded_int("MODELDESK_DOWNLOAD_RANGE_MIN_BYTES", 64 * MiB, 1, 2**62)
PIECE_MIN_BYTES = MiB
PIECE_MAX_BYTES = 256 * MiB
PIECES_PER_CONNECTION = 16
# Tries of one piece in a row without a byte of progress before the transfer gives up (and the download retries
# with backoff, every other piece's bytes kept).
RANGE_TRIES = 4
RANGE_RETRY_SECONDS = (0.2, 1.0, 3.0)
RANGE_BUFFER = MiB


@dataclass(frozen=True)
class Progress:
    bytes_done: int
    bytes_total: int | None
    speed: float | None
    eta: float | None


Reporter = Callable[[Progress], bool]
# Bytes a second the download may use now (None: no limit); asked about once a second.
RateLimit = Callable[[], float | None]

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


class _Bucket:
    """A token bucket: the bytes a second that every connection of one transfer may use together (None: no limit).

    Readers pay after each receive and wait while the bucket is in debt, so whatever the number of connections
    the sum keeps to the rate; TCP flow control makes the sender wait meanwhile. The rate can change at any time.
    """

    BURST_SECONDS = 0.2  # an idle bucket saves up this much, so a limit is kept over any second, not only on average

    def __init__(self, rate: float | None, halt: threading.Event) -> None:
        self._cond = threading.Condition()
        self._rate = self._valid(rate)
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._halt = halt

    @staticmethod
    def _valid(rate: float | None) -> float | None:
        # A limit of 0 would stop the transfer for good: the smallest limit is 1 KiB/s.
        return None if rate is None else max(float(rate), 1024.0)

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        rate = self._valid(rate)
        with self._cond:
            if rate == self._rate:
                return
            self._refill()
            self._rate = rate
            self._tokens = 0.0 if rate is None else min(self._tokens, rate * self.BURST_SECONDS)
            self._cond.notify_all()

    def chunk(self, size: int) -> int:
        """How much to receive at once: small under a limit, so the rate holds over short spans too."""
        rate = self._rate
        return size if rate is None else max(1024, min(size, int(rate / 20)))

    def pay(self, count: int) -> None:
        if self._rate is None:
            return
        with self._cond:
            self._refill()
            if self._rate is None:
                return
            self._tokens -= count
            while self._tokens < 0 and self._rate is not None and not self._halt.is_set():
                self._cond.wait(min(0.25, -self._tokens / self._rate))
                self._refill()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate is not None:
            self._tokens = min(self._tokens + (now - self._stamp) * self._rate, self._rate * self.BURST_SECONDS)
        self._stamp = now


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


class _Session:
    """One connection's GETs of a file: redirects followed (the token dropped once they leave the Hub's host), the
    connection kept alive from one range request to the next, and the final address remembered so later ranges
    go straight there (a signed CDN address that stops working is asked of the Hub again, see `forget_location`).
    """

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url = url
        self.location = url
        self.origin = urlsplit(url).netloc
        self.headers = headers
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        # The socket of the last request: http.client lets go of it when the server says it will close the
        # connection, but a stop must still be able to cut the body's read.
        self._sock: socket.socket | None = None
        self._key: tuple[str, str | None, int | None] | None = None
        self._used = False  # a response came over this connection: the server may have closed it since

    @property
    def sock(self) -> socket.socket | None:
        return self._sock

    def cut(self) -> None:
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self._key, self._sock = None, None, None

    def forget_location(self) -> None:
        self.location = self.url

    def _connection(self, scheme: str, host: str | None, port: int | None) -> http.client.HTTPConnection:
        if self.conn is not None and self._key == (scheme, host, port):
            return self.conn
        self.close()
        if scheme == "https":
            self.conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                                    context=ssl.create_default_context())  # fmt: skip
        elif scheme == "http":
            self.conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        else:
            raise HubError("hub_error", f"Unsupported download URL scheme {scheme!r}.", transient=False)
        self._key, self._used = (scheme, host, port), False
        return self.conn

    def get(self, extra: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """GET the file, following up to 5 redirects. The previous response must have been read to its end."""
        url = self.location
        for _ in range(6):
            parts = urlsplit(url)
            send = {**self.headers, **(extra or {})}
            if parts.netloc != self.origin:
                send = {k: v for k, v in send.items() if k.lower() != "authorization"}
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn = self._connection(parts.scheme, parts.hostname, parts.port)
            try:
                response = self._request(conn, path, send)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not self._used:
                    raise
                # The server closed the kept-alive connection between two requests: once more on a new one.
                self.close()
                conn = self._connection(parts.scheme, parts.hostname, parts.port)
                response = self._request(conn, path, send)
            self._used = True
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location"))
                response.read()
                continue
            self.location = url
            return response
        raise HubError("hub_error", "Too many redirects while downloading.", transient=True)

    def _request(self, conn: http.client.HTTPConnection, path: str, headers: dict[str, str]):
        if conn.sock is None:
            conn.connect()
        self._sock = conn.sock
        conn.request("GET", path, headers=headers)
        return conn.getresponse()


def _open(
    url: str, headers: dict[str, str], timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """GET `url`, following up to 5 redirects; the token is dropped when a redirect leaves the host."""
    session = _Session(url, headers, timeout)
    try:
        response = session.get()
    except BaseException:
        session.close()
        raise
    return session.conn, response


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
    rate_limit: RateLimit | None = None,
) -> Fetched:
    """Bring `remote` into the cache, verified; the snapshot path and what was checked. Raises HubError or Stopped.

    Safe to call again after any failure or kill: it continues from the partial file. `report` is called from
    a helper thread while bytes flow; `thread_exit` runs when that thread ends (e.g. to close its DB connection).
    When `report` stops the transfer, `discard` is asked whether the partial file goes too (a cancel) or stays
    (a pause); it is deleted while the lock is still held, so no other transfer of the blob can have begun.
    `rate_limit` is asked for the bytes a second allowed before the first byte and then about once a second.
    """
    try:
        return _fetch(remote, report=report, stall_seconds=stall_seconds or STALL_SECONDS, thread_exit=thread_exit,
                      discard=discard, rate_limit=rate_limit)  # fmt: skip
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


def _fetch(remote: RemoteFile, *, report: Reporter, stall_seconds: float, thread_exit, discard, rate_limit) -> Fetched:
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
        return _fetch_locked(remote, paths, partial, report=report, stall_seconds=stall_seconds,
                             thread_exit=thread_exit, rate_limit=rate_limit)  # fmt: skip
    except Stopped:
        if discard is not None and discard():
            _remove_partial(partial)
        raise
    finally:
        lock.release()


def _sidecar(partial: Path) -> Path:
    return partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX) + RANGES_SUFFIX)


def _remove_partial(partial: Path) -> None:
    # The partial file first: a sidecar without its partial file is ignored, a partial file with holes and no
    # sidecar would be taken for one prefix.
    partial.unlink(missing_ok=True)
    _sidecar(partial).unlink(missing_ok=True)


def partial_bytes(repo: str, etag: str) -> int:
    """The bytes of a blob's partial file: what the next transfer continues from (0 when there is none)."""
    try:
        partial = RepoPaths.for_repo(repo).checked_partial(etag)
        size = partial.stat().st_size
    except (OSError, UnsafePath):
        return 0
    plan = _RangePlan.load(_sidecar(partial), partial, etag=etag, size=None)
    return plan.landed() if plan is not None else size


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
        _sidecar(partial).unlink(missing_ok=True)
        return True
    if not lock_path.parent.is_dir():
        _remove_partial(partial)
        return True
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        _remove_partial(partial)
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
    remote: RemoteFile,
    paths: RepoPaths,
    partial: Path,
    *,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
    rate_limit: RateLimit | None,
) -> Fetched:
    kind, expected = _expected(remote)
    total = remote.size
    sidecar = _sidecar(partial)
    plan = None
    if sidecar.exists():
        # Without a size from the Hub the pieces cannot be checked against the file: start over then too.
        plan = _RangePlan.load(sidecar, partial, etag=remote.etag, size=total) if total is not None else None
        if plan is None:  # another file's, or unreadable: the partial file's holes are unknown, start over
            _remove_partial(partial)
    offset = partial.stat().st_size if partial.exists() else 0
    if total is not None and offset > total:
        _remove_partial(partial)
        offset, plan = 0, None
    if plan is not None:
        offset = plan.landed()

    if total is not None:
        needed = total - offset
        free = free_bytes(paths.blobs)
        if free - DISK_RESERVE < needed:
            raise _disk_full(needed + DISK_RESERVE, free)

    if not report(Progress(offset, total, None, None)):
        raise Stopped

    bucket = _Bucket(None, threading.Event())
    _Watchdog.refresh_rate(bucket, rate_limit)  # the limit holds from the first byte
    ranged = plan is not None or (total is not None and total >= RANGE_MIN_BYTES and CONNECTIONS > 1)
    transfer = _transfer_ranged if ranged else _transfer
    run = _Run(report=report, stall_seconds=stall_seconds, thread_exit=thread_exit, bucket=bucket,
               rate_limit=rate_limit)  # fmt: skip
    done, digests = transfer(remote, partial, offset, plan=plan, run=run)

    if total is not None and done != total:
        raise HubError("size_mismatch", f"Received {done} bytes, expected {total}; will try again.", transient=True)
    if kind == VERIFIED_GIT_SHA1 and digests.git_sha1 is None:
        digests = _hash_file(partial, git=True)  # the size was unknown until the end: hash once more
    actual = digests.sha256 if kind == VERIFIED_SHA256 else digests.git_sha1
    if actual != expected:
        _remove_partial(partial)
        name = "sha256" if kind == VERIFIED_SHA256 else "git blob sha1"
        raise HubError(
            "checksum_mismatch",
            f"The downloaded file's {name} ({actual[:16]}…) does not match the Hub's ({expected[:16]}…); the "
            "bytes were damaged on the way and were discarded. Retry; if it repeats, check proxies or the mirror.",
            transient=False,
        )
    # The partial file is the blob now: its sidecar (if it had one) says nothing any more.
    published = _publish(remote, partial)
    sidecar.unlink(missing_ok=True)
    return Fetched(published, kind)


def _network_error(exc: BaseException) -> HubError:
    return HubError("network_error", f"Could not connect to download the file ({exc}); will try again.",
                    transient=True)  # fmt: skip


def _range_refused(partial: Path) -> HubError:
    # The server will not continue our partial file: drop it and start over on the next attempt.
    _remove_partial(partial)
    return HubError("range_refused", "The server would not resume the download; starting over.", transient=True)


def _refused(status: int) -> HubError:
    """The error for an answer that carries no bytes of the file."""
    if status == 429 or status >= 500:
        return HubError("hub_unavailable", f"The download server answered {status}; will try again.", transient=True)
    return HubError("download_refused", f"The download server answered {status}.", transient=False)


@dataclass(frozen=True)
class _Run:
    """What every part of one transfer is given: whom to tell, when to call it a stall, the speed limit."""

    report: Reporter
    stall_seconds: float
    thread_exit: Callable[[], None] | None
    bucket: _Bucket
    rate_limit: RateLimit | None

    def watchdog(self, **kwargs) -> _Watchdog:
        kwargs.setdefault("stall_seconds", self.stall_seconds)
        return _Watchdog(report=self.report, thread_exit=self.thread_exit, bucket=self.bucket,
                         rate_limit=self.rate_limit, **kwargs)  # fmt: skip


def _transfer(
    remote: RemoteFile, partial: Path, offset: int, *, plan: _RangePlan | None, run: _Run
) -> tuple[int, Digests]:
    """GET the rest of the file into `partial` in one stream; (bytes now in the file, hashes of the whole file)."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    session = _Session(remote.url, dict(remote.headers), timeout=run.stall_seconds + 5)
    try:
        try:
            response = session.get(headers)
        except (OSError, http.client.HTTPException) as exc:
            raise _network_error(exc) from exc
        status = response.status
        stream = partial_function(_stream, session, partial, total=remote.size, git=remote.git_sha1 is not None,
                                  run=run)  # fmt: skip
        if status == 416 and remote.size is not None and offset == remote.size:
            return stream(None, offset)  # everything was already here: only the hash is left to do
        if status == 416 or (status == 200 and offset):
            raise _range_refused(partial)
        if status not in (200, 206):
            raise _refused(status)
        if status == 206:
            content_range = response.getheader("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise HubError("range_mismatch", f"Unexpected Content-Range {content_range!r}.", transient=True)
        return stream(response, offset)
    finally:
        session.close()


class _Watchdog:
    """Reports progress about once a second from its own thread, and cuts the connection on a cancel or a stall.

    The reading loop stays tight and never waits on the database; a blocked read is ended by shutting the socket.
    """

    def __init__(
        self,
        *,
        cut: Callable[[], None],
        landed: Callable[[], int],
        total: int | None,
        report: Reporter,
        stall_seconds: float | None,
        thread_exit: Callable[[], None] | None,
        bucket: _Bucket,
        rate_limit: RateLimit | None = None,
        tick: Callable[[float], None] | None = None,
    ):
        """`landed`: the bytes in the file so far; `stall_seconds` None when the transfer watches its connections
        itself (`tick`, called each second); `rate_limit` is asked each second and sets `bucket`'s rate."""
        self.cut = cut
        self.landed = landed
        self.thread_exit = thread_exit
        self.done = landed()
        self.total = total
        self.report = report
        self.stall_seconds = stall_seconds
        self.bucket = bucket
        self.rate_limit = rate_limit
        self.tick = tick
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
        self.cut()

    @staticmethod
    def refresh_rate(bucket: _Bucket, rate_limit: RateLimit | None) -> None:
        if rate_limit is None:
            return
        try:
            bucket.set_rate(rate_limit())
        except Exception:  # the limit could not be read this second (a database hiccup): keep the last one
            logger.warning("could not read the download's speed limit; keeping %s", bucket.rate, exc_info=True)

    def _run(self) -> None:
        last_done, last_change = self.done, time.monotonic()
        try:
            while not self._finish.wait(REPORT_EVERY):
                now = time.monotonic()
                self.done = done = self.landed()
                if done != last_done:
                    last_done, last_change = done, now
                elif self.stall_seconds is not None and now - last_change >= self.stall_seconds:
                    self.stalled = True
                    self._cut()
                    return
                self.refresh_rate(self.bucket, self.rate_limit)
                if self.tick is not None:
                    self.tick(now)
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


def _open_partial(partial: Path, *, truncate: bool) -> int:
    # 0666 and the umask decide the mode (0644 under 022), as huggingface_hub's blobs; never through a link.
    return os.open(partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if truncate else 0), 0o666)


def _stream(
    session: _Session,
    partial: Path,
    response: http.client.HTTPResponse | None,
    offset: int,
    *,
    total: int | None,
    git: bool,
    run: _Run,
) -> tuple[int, Digests]:
    """Copy the body into the partial file as it arrives, hashing it on the way; (bytes, hashes)."""
    bucket, stall_seconds = run.bucket, run.stall_seconds
    fd = _open_partial(partial, truncate=not offset)
    sock = session.sock
    halt = bucket._halt

    def cut() -> None:
        halt.set()
        bucket.wake()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    with (
        os.fdopen(fd, "r+b", buffering=0) as handle,
        _FileHasher(fd, written=offset, git_size=total if git else None) as hasher,
    ):
        handle.seek(offset)
        pump = _Pump(handle, hasher, bucket, done=offset, total=total)
        with run.watchdog(cut=cut, landed=lambda: pump.done, total=total) as watchdog:
            failure = _pump_body(pump, response, partial, total)
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


def _pump_body(pump: _Pump, response, partial: Path, total: int | None) -> BaseException | None:
    """Read the body; the connection fault that ended it early, if any (a full disk is raised at once)."""
    if response is None:
        return None
    try:
        pump.read(response)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _remove_partial(partial)
            raise _disk_full((total or pump.done) - pump.done, free_bytes(partial.parent), pump.done) from exc
        return exc
    except http.client.HTTPException as exc:
        return exc
    return None


class _Pump:
    """Moves the body into the file and tells the hasher how far it got; the watchdog reads `done`."""

    HASH_STEP = MiB

    def __init__(self, handle, hasher: _FileHasher, bucket: _Bucket, *, done: int, total: int | None):
        self.handle = handle
        self.hasher = hasher
        self.bucket = bucket
        self.done = done
        self.total = total
        self._told_hasher = done

    def _moved(self, count: int) -> None:
        self.done += count
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
            want = self.bucket.chunk(CHUNK if remaining is None else min(CHUNK, remaining))
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
            self.bucket.pay(count)
            if remaining is not None:
                remaining -= count


def _piece_size(size: int, connections: int) -> int:
    """Pieces small enough that the hashed prefix follows the transfer closely (and the last ones end together),
    large enough that one more request per piece costs nothing."""
    piece = size // (connections * PIECES_PER_CONNECTION)
    return min(max(piece - piece % MiB, PIECE_MIN_BYTES), PIECE_MAX_BYTES)


@dataclass
class _Piece:
    index: int
    start: int
    end: int  # exclusive
    done: int = 0  # bytes from `start` that are in the file; written only by the reader that holds the piece
    taken: bool = False
    failures: int = 0  # tries in a row that brought no byte

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def left(self) -> int:
        return self.end - self.position


class _RangePlan:
    """The pieces of one file and how far each got, kept in the sidecar file beside the partial file.

    The sidecar says no more than is in the file (a piece's count grows after its bytes are written), so a
    worker killed at any moment fetches again at most what came since the last rewrite: at most `save_every`
    bytes, or one second's worth. The rewrite is atomic (a new file renamed over the old), so a kill never
    leaves half a sidecar.
    """

    def __init__(self, path: Path, *, etag: str, size: int, piece: int, done: list[int]) -> None:
        self.path = path
        self.etag = etag
        self.size = size
        self.piece = piece
        self.pieces = [
            _Piece(index, start, min(start + piece, size), done[index])
            for index, start in enumerate(range(0, size, piece))
        ]
        self.save_every = min(max(size // 200, 256 * 1024), 16 * MiB)
        self._lock = threading.Lock()
        self._head = 0  # the first piece not complete: the file is whole up to its position
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._hasher: _FileHasher | None = None
        self._told_hasher = 0
        self._advance_head()

    @classmethod
    def fresh(cls, path: Path, *, etag: str, size: int, prefix: int, connections: int) -> _RangePlan:
        """A plan for a file whose first `prefix` bytes are already in the partial file (a single stream's)."""
        piece = _piece_size(size, connections)
        done = [min(max(prefix - start, 0), min(piece, size - start)) for start in range(0, size, piece)]
        return cls(path, etag=etag, size=size, piece=piece, done=done)

    @classmethod
    def load(cls, path: Path, partial: Path, *, etag: str, size: int | None) -> _RangePlan | None:
        """The sidecar's plan if it describes this partial file of this blob, else None."""
        try:
            state = json.loads(path.read_text())
            on_disk = partial.stat().st_size
            piece, total, done = int(state["piece"]), int(state["size"]), [int(count) for count in state["done"]]
            if state["etag"] != etag or (size is not None and total != size) or piece <= 0 or total <= 0:
                return None
            if len(done) != -(-total // piece):
                return None
            plan = cls(path, etag=etag, size=total, piece=piece, done=done)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        for item in plan.pieces:
            # A count the file cannot hold (it was cut short, or replaced) means the sidecar is not its own.
            if not 0 <= item.done <= item.end - item.start or (item.done and item.position > on_disk):
                return None
        return plan

    @property
    def complete(self) -> bool:
        return self._head >= len(self.pieces)

    def prefix(self) -> int:
        return self.size if self.complete else self.pieces[self._head].position

    def landed(self) -> int:
        return sum(item.done for item in self.pieces)

    def follow(self, hasher: _FileHasher) -> None:
        """Tell `hasher` each time the whole part at the start of the file grows."""
        self._hasher = hasher
        self._told_hasher = self.prefix()

    def take(self) -> _Piece | None:
        """The first piece nobody holds that still lacks bytes (in order, so the whole prefix grows steadily)."""
        with self._lock:
            for item in self.pieces[self._head :]:
                if not item.taken and item.left:
                    item.taken = True
                    return item
        return None

    def give_back(self, item: _Piece) -> None:
        with self._lock:
            item.taken = False

    def moved(self, item: _Piece, count: int) -> None:
        """`count` more bytes of `item` are in the file."""
        with self._lock:
            item.done += count
            self._unsaved += count
            if item.index == self._head:
                self._advance_head()
                prefix = self.prefix()
                if self._hasher is not None and (prefix - self._told_hasher >= _Pump.HASH_STEP or self.complete):
                    self._hasher.advance(prefix)
                    self._told_hasher = prefix
            if self._unsaved >= self.save_every:
                self._save()

    def _advance_head(self) -> None:
        while self._head < len(self.pieces) and not self.pieces[self._head].left:
            self._head += 1

    def save(self, *, older_than: float = 0.0) -> None:
        with self._lock:
            if self._unsaved and time.monotonic() - self._saved_at >= older_than:
                self._save()

    def save_now(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        state = {"etag": self.etag, "size": self.size, "piece": self.piece,
                 "done": [item.done for item in self.pieces]}  # fmt: skip
        temporary = self.path.with_name(self.path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, separators=(",", ":"))
        os.replace(temporary, self.path)
        self._unsaved, self._saved_at = 0, time.monotonic()


class _RangeFault(Exception):
    """One try of a piece failed in a way another try can mend; `error` says what, for when tries run out."""

    def __init__(self, error: HubError):
        super().__init__(error.message)
        self.error = error


class _RangedTransfer:
    """The connections of one ranged transfer: each takes the next piece, fetches it, and takes another."""

    def __init__(self, remote: RemoteFile, partial: Path, fd: int, plan: _RangePlan, *, bucket: _Bucket,
                 stall_seconds: float) -> None:  # fmt: skip
        self.remote = remote
        self.partial = partial
        self.fd = fd
        self.plan = plan
        self.bucket = bucket
        self.halt = bucket._halt
        self.stall_seconds = stall_seconds
        self.readers: list[_RangeReader] = []
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    def session(self) -> _Session:
        return _Session(self.remote.url, dict(self.remote.headers), timeout=self.stall_seconds + 5)

    def fail(self, error: BaseException) -> None:
        """The whole transfer ends with `error` (the first one wins); every connection is cut."""
        with self._lock:
            if self.failure is None:
                self.failure = error
        self.stop()

    def stop(self) -> None:
        self.halt.set()
        self.bucket.wake()
        for reader in list(self.readers):
            reader.session.cut()

    def watch(self, now: float) -> None:
        """Each second, from the watchdog: cut a connection that brought nothing for `stall_seconds` (its piece is
        tried again), and rewrite the sidecar if bytes came since it was last written."""
        for reader in list(self.readers):
            if reader.receiving and now - reader.last_progress >= self.stall_seconds:
                reader.stalled = True
                reader.session.cut()
        self.plan.save(older_than=REPORT_EVERY)

    def start(self, first: tuple[_Piece, _Session, http.client.HTTPResponse] | None, connections: int) -> None:
        if first is not None:
            self.readers.append(_RangeReader(self, first[1], first=(first[0], first[2])))
        while len(self.readers) < connections:
            self.readers.append(_RangeReader(self, self.session()))
        for reader in self.readers:
            reader.start()

    def join(self) -> None:
        for reader in self.readers:
            reader.join()


class _RangeReader(threading.Thread):
    def __init__(self, transfer: _RangedTransfer, session: _Session,
                 first: tuple[_Piece, http.client.HTTPResponse] | None = None) -> None:  # fmt: skip
        super().__init__(name="range", daemon=True)
        self.transfer = transfer
        self.session = session
        self.first = first
        self.receiving = False
        self.stalled = False
        self.last_progress = time.monotonic()

    def run(self) -> None:
        transfer, plan = self.transfer, self.transfer.plan
        buffer = bytearray(RANGE_BUFFER)
        try:
            while not transfer.halt.is_set():
                if self.first is not None:
                    (item, response), self.first = self.first, None
                else:
                    item, response = plan.take(), None
                    if item is None:
                        return
                before = item.done
                try:
                    self._fetch(item, response, buffer)
                except _RangeFault as fault:
                    # A try that brought bytes was not in vain: only tries in a row without any count.
                    item.failures = 0 if item.done > before else item.failures + 1
                    failures = item.failures
                    plan.give_back(item)
                    if transfer.halt.is_set():
                        return
                    if failures >= RANGE_TRIES:
                        transfer.fail(fault.error)
                        return
                    self.session.close()
                    if failures:
                        transfer.halt.wait(RANGE_RETRY_SECONDS[min(failures, len(RANGE_RETRY_SECONDS)) - 1])
                    continue
                plan.give_back(item)
        except BaseException as exc:  # a full disk, a refusal: the whole transfer ends with it
            if not transfer.halt.is_set() or transfer.failure is None:
                transfer.fail(exc)
        finally:
            self.receiving = False
            self.session.close()

    def _fetch(self, item: _Piece, response: http.client.HTTPResponse | None, buffer: bytearray) -> None:
        transfer = self.transfer
        self.stalled, self.last_progress, self.receiving = False, time.monotonic(), True
        try:
            if response is None:
                response = self.session.get({"Range": f"bytes={item.position}-{item.end - 1}"})
                _check_piece(response, item, transfer, self.session)
            self._receive(response, item, buffer)
        except (OSError, http.client.HTTPException) as exc:
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                _remove_partial(transfer.partial)
                plan = transfer.plan
                raise _disk_full(plan.size - plan.landed(), free_bytes(transfer.partial.parent), plan.landed()) from exc
            if self.stalled:
                raise _RangeFault(HubError("stalled", f"No bytes arrived for {transfer.stall_seconds:.0f} s; "
                                           "resuming.", transient=True)) from exc  # fmt: skip
            raise _RangeFault(HubError("connection_lost", f"The connection dropped ({type(exc).__name__}); "
                                       "resuming.", transient=True)) from exc  # fmt: skip
        finally:
            self.receiving = False

    def _receive(self, response: http.client.HTTPResponse, item: _Piece, buffer: bytearray) -> None:
        transfer, plan, bucket, fd = self.transfer, self.transfer.plan, self.transfer.bucket, self.transfer.fd
        view = memoryview(buffer)
        remaining = item.left
        while remaining > 0:
            count = response.fp.readinto1(view[: bucket.chunk(min(len(buffer), remaining))])
            if not count:
                raise _RangeFault(HubError("connection_lost", f"The connection closed after "
                                           f"{human_bytes(plan.landed())}; resuming.", transient=True))  # fmt: skip
            written, position = 0, item.position
            while written < count:
                written += os.pwrite(fd, view[written:count], position + written)
            plan.moved(item, count)
            remaining -= count
            self.last_progress = time.monotonic()
            bucket.pay(count)
            self.last_progress = time.monotonic()
            if transfer.halt.is_set():
                raise _RangeFault(HubError("stopped", "Stopped.", transient=True))
        response.close()  # read to its end: the connection is kept for the next piece


def _check_piece(response: http.client.HTTPResponse, item: _Piece, transfer: _RangedTransfer,
                 session: _Session) -> None:  # fmt: skip
    """Raise unless `response` is exactly the asked bytes of the piece."""
    status = response.status
    if status == 206:
        content_range = response.getheader("Content-Range", "")
        expected = f"bytes {item.position}-{item.end - 1}/{transfer.plan.size}"
        if content_range != expected or response.length != item.left:
            session.close()  # its body is not ours to read to the end
            raise _RangeFault(HubError("range_mismatch", f"Unexpected Content-Range {content_range!r}; "
                                       "will try again.", transient=True))  # fmt: skip
        return
    session.close()
    if status == 200:
        # It answered ranges at first and not now: the pieces cannot be trusted to fit, start over in one stream.
        raise _range_refused(transfer.partial)
    if status in (401, 403, 404, 410) and session.location != session.url:
        # A signed CDN address that expired or was withdrawn: the next try asks the Hub for a fresh one.
        session.forget_location()
        raise _RangeFault(HubError("download_refused", f"The download server answered {status}.", transient=True))
    if status in (401, 403, 410) and not isinstance(transfer, _Probe):
        # The address served the first range and refuses a later one: a signed CDN address (the Hub hands those
        # out from its HEAD) that expired meanwhile. The download's next attempt gets a fresh one from the Hub
        # and keeps every byte fetched so far.
        raise HubError("download_url_expired", f"The download address stopped working (the server answered "
                       f"{status}); asking the Hub for a new one.", transient=True)  # fmt: skip
    error = _refused(status)
    if error.transient:
        raise _RangeFault(error)
    raise error


def _transfer_ranged(
    remote: RemoteFile, partial: Path, offset: int, *, plan: _RangePlan | None, run: _Run
) -> tuple[int, Digests]:
    """GET what is missing of the file as several byte ranges at once; (bytes in the file, hashes of the file).

    Without a sidecar yet, the first range request is the probe: a 206 for exactly that range starts the other
    connections, a 200 is read as the whole file in one stream (the server does not do ranges)."""
    size = remote.size
    assert size is not None
    git = remote.git_sha1 is not None
    probing = plan is None
    if plan is None:
        plan = _RangePlan.fresh(_sidecar(partial), etag=remote.etag, size=size, prefix=offset, connections=CONNECTIONS)
    first = None
    if not plan.complete:
        session = _Session(remote.url, dict(remote.headers), timeout=run.stall_seconds + 5)
        item = plan.take()
        assert item is not None
        try:
            try:
                response = session.get({"Range": f"bytes={item.position}-{item.end - 1}"})
            except (OSError, http.client.HTTPException) as exc:
                raise _network_error(exc) from exc
            if response.status == 200 and probing and offset == 0:
                try:
                    return _stream(session, partial, response, 0, total=size, git=git, run=run)
                finally:
                    session.close()
            if response.status in (200, 416):
                raise _range_refused(partial)
            try:
                _check_piece(response, item, _Probe(plan, partial), session)  # type: ignore[arg-type]
            except _RangeFault as fault:
                raise fault.error from fault
        except BaseException:
            session.close()
            raise
        first = (item, session, response)
    if probing:
        plan.save_now()  # before any byte lands away from the prefix: from here on the file may have holes
    fd = _open_partial(partial, truncate=False)
    try:
        with _FileHasher(fd, written=plan.prefix(), git_size=size if git else None) as hasher:
            plan.follow(hasher)
            transfer = _RangedTransfer(remote, partial, fd, plan, bucket=run.bucket, stall_seconds=run.stall_seconds)
            # Each connection is watched for stalls on its own (`watch`): the others may go on meanwhile.
            watchdog = run.watchdog(cut=transfer.stop, landed=plan.landed, total=size, stall_seconds=None,
                                    tick=transfer.watch)  # fmt: skip
            with watchdog:
                if first is not None:
                    transfer.start(first, CONNECTIONS)
                    transfer.join()
            if transfer.failure is None or partial.exists():
                plan.save()  # all readers have stopped: the sidecar says exactly what is in the file
            if watchdog.error is not None:
                raise watchdog.error
            if watchdog.stopped:
                raise Stopped
            if transfer.failure is not None:
                raise transfer.failure
            if not plan.complete:
                raise HubError("connection_lost", f"The connection closed after {human_bytes(plan.landed())}; "
                               "resuming.", transient=True)  # fmt: skip
            hasher.advance(size)
            return size, hasher.digests()
    finally:
        os.close(fd)


@dataclass
class _Probe:
    """What `_check_piece` needs of a transfer, before the transfer exists."""

    plan: _RangePlan
    partial: Path


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
