"""The byte transfer: resumable, verified, throttled progress, safe to kill at any moment.

huggingface_hub restarts from byte 0 in a new process, so the transfer is our own: bytes go to
`blobs/<etag>.modeldesk-partial`, which survives a killed worker and is continued with an HTTP Range request.
The sha256 is computed while the bytes arrive (and over the kept part on resume) and compared with the Hub's
before the file is moved to `blobs/<etag>` and linked from the snapshot. Nothing appears in the snapshot before
that, so a reader never sees a partial or unverified file.

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

from modelfiles.cache import RepoPaths, free_bytes, publish
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


class Stopped(Exception):
    """The caller asked the transfer to stop (cancel, or the download was taken over); the partial file stays."""


def human_bytes(count: float | None) -> str:
    """Sizes as every page shows them (Django's filesizeformat: 1 KB = 1024 bytes), so numbers agree."""
    from django.template.defaultfilters import filesizeformat

    return "—" if count is None else str(filesizeformat(count)).replace("\xa0", " ")


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
    """sha256 of the partial file, computed on its own thread as the bytes land in it.

    It reads the file through mmap (no copy in Python; hashlib releases the GIL), so hashing overlaps with
    receiving. On resume the kept part is hashed the same way, from the start of the file.
    """

    # Mapped pages count toward the worker's RSS: a small window keeps its memory flat.
    WINDOW = 16 * 1024 * 1024

    def __init__(self, fd: int, *, written: int = 0) -> None:
        self._fd = fd
        self._sha = hashlib.sha256()
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

    def hexdigest(self) -> str:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()

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
                    start = self._hashed - self._hashed % mmap.ALLOCATIONGRANULARITY
                    end = min(target, start + self.WINDOW)
                    with (
                        mmap.mmap(self._fd, end - start, offset=start, access=mmap.ACCESS_READ) as mapped,
                        memoryview(mapped) as view,
                        view[self._hashed - start :] as piece,
                    ):
                        self._sha.update(piece)
                    self._hashed = end
        except BaseException as exc:  # reported by hexdigest(), not lost with the thread
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
) -> Path:
    """Bring `remote` into the cache, verified, and return the snapshot path. Raises HubError or Stopped.

    Safe to call again after any failure or kill: it continues from the partial file. `report` is called from
    a helper thread while bytes flow; `thread_exit` runs when that thread ends (e.g. to close its DB connection).
    """
    stall_seconds = stall_seconds or STALL_SECONDS
    paths = RepoPaths.for_repo(remote.repo)
    paths.blobs.mkdir(parents=True, exist_ok=True)
    blob = paths.blob(remote.etag)
    if blob.exists() and (remote.size is None or blob.stat().st_size == remote.size):
        # Another revision already brought the same bytes (blobs are shared by etag).
        return publish(repo=remote.repo, filename=remote.filename, revision=remote.revision, commit=remote.commit,
                       etag=remote.etag, verified_file=blob)  # fmt: skip
    lock_path = paths.lock(remote.etag)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=10)
    except Timeout as exc:
        raise HubError(
            "busy", "Another process is writing this file right now; will try again.", transient=True
        ) from exc
    try:
        return _fetch_locked(remote, paths, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit)
    finally:
        lock.release()


def _fetch_locked(remote: RemoteFile, paths: RepoPaths, *, report: Reporter, stall_seconds: float, thread_exit) -> Path:
    partial = paths.partial(remote.etag)
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

    done, digest = _transfer(
        remote, partial, offset, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
    )

    if total is not None and done != total:
        raise HubError("size_mismatch", f"Received {done} bytes, expected {total}; will try again.", transient=True)
    expected = remote.sha256
    if expected is not None and digest != expected:
        partial.unlink(missing_ok=True)
        raise HubError(
            "checksum_mismatch",
            f"The downloaded file's sha256 ({digest[:16]}…) does not match the Hub's ({expected[:16]}…); the "
            "bytes were damaged on the way and were discarded. Retry; if it repeats, check proxies or the mirror.",
            transient=False,
        )
    return publish(repo=remote.repo, filename=remote.filename, revision=remote.revision, commit=remote.commit,
                   etag=remote.etag, verified_file=partial)  # fmt: skip


def _transfer(
    remote: RemoteFile,
    partial: Path,
    offset: int,
    *,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> tuple[int, str]:
    """GET the rest of the file into `partial`; (bytes now in the file, sha256 of the whole file)."""
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
            return _stream(None, conn.sock, partial, offset, remote.size, report=report,
                           stall_seconds=stall_seconds, thread_exit=thread_exit)  # fmt: skip
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
        return _stream(response, conn.sock, partial, offset, remote.size, report=report,
                       stall_seconds=stall_seconds, thread_exit=thread_exit)  # fmt: skip
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
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> tuple[int, str]:
    """Copy the body into the partial file as it arrives, hashing it on the way; (bytes, sha256)."""
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | (0 if offset else os.O_TRUNC), 0o644)
    with (
        os.fdopen(fd, "r+b", buffering=0) as handle,
        _FileHasher(fd, written=offset) as hasher,
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
        return done, hasher.hexdigest()


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
