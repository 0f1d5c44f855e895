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
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
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


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


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


class _Hasher:
    """sha256 on its own thread over a small pool of reused buffers.

    hashlib releases the GIL, so hashing one buffer overlaps with receiving and writing the next, and no byte
    is copied in Python on the way.
    """

    BUFFERS = 4

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._free: Queue[bytearray] = Queue()
        for _ in range(self.BUFFERS):
            self._free.put(bytearray(CHUNK))
        self._full: Queue[tuple[bytearray, int] | None] = Queue()
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buffer, length = item
            self._sha.update(memoryview(buffer)[:length])
            self._free.put(buffer)

    def take(self) -> bytearray:
        return self._free.get()

    def give(self, buffer: bytearray, length: int) -> None:
        """Hash `length` bytes of `buffer`, then hand the buffer back to the pool."""
        if length:
            self._full.put((buffer, length))
        else:
            self._free.put(buffer)

    def hexdigest(self) -> str:
        self._full.put(None)
        self._thread.join()
        return self._sha.hexdigest()

    def abandon(self) -> None:
        self._full.put(None)


def _hash_existing(path: Path, length: int, hasher: _Hasher) -> None:
    with path.open("rb", buffering=0) as handle:
        remaining = length
        while remaining:
            buffer = hasher.take()
            count = handle.readinto(memoryview(buffer)[: min(CHUNK, remaining)])
            hasher.give(buffer, count)
            if not count:
                raise OSError(f"{path} is shorter than expected")
            remaining -= count


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

    hasher = _Hasher()
    try:
        if offset:
            _hash_existing(partial, offset, hasher)
        done = _transfer(
            remote, partial, offset, hasher, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
        )
        digest = hasher.hexdigest()
    except BaseException:
        hasher.abandon()
        raise

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
    hasher: _Hasher,
    *,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> int:
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
            return offset  # everything was already here
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
        return _stream(response, conn.sock, partial, offset, remote.size, hasher, report=report,
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
    response: http.client.HTTPResponse,
    sock: socket.socket,
    partial: Path,
    offset: int,
    total: int | None,
    hasher: _Hasher,
    *,
    report: Reporter,
    stall_seconds: float,
    thread_exit,
) -> int:
    """Copy the body into the partial file as it arrives; hand the hasher whole buffers."""
    done = offset
    # With a Content-Length we read the socket's buffered reader directly, one receive at a time (readinto1),
    # so the partial file and the progress follow the bytes even on a slow link; chunked bodies go through
    # http.client.
    remaining = response.length if not response.chunked else None
    reader = response.fp if remaining is not None else None
    failure: BaseException | None = None
    ended = False
    with (
        partial.open("r+b" if offset else "wb", buffering=0) as handle,
        _Watchdog(
            sock, offset=offset, total=total, report=report, stall_seconds=stall_seconds, thread_exit=thread_exit
        ) as watchdog,
    ):
        handle.seek(offset)
        while not (ended or failure):
            buffer = hasher.take()
            view = memoryview(buffer)
            filled = 0
            while filled < len(buffer):
                want = len(buffer) - filled
                if remaining is not None:
                    if remaining == 0:
                        ended = True
                        break
                    want = min(want, remaining)
                target = view[filled : filled + want]
                try:
                    if reader is not None:
                        count = reader.readinto1(target)
                    else:
                        block = response.read1(want)
                        count = len(block)
                        target[:count] = block
                except (OSError, http.client.HTTPException) as exc:
                    failure = exc
                    break
                if not count:
                    ended = True
                    break
                try:
                    _write_all(handle, target[:count])
                except OSError as exc:
                    hasher.give(buffer, 0)
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        partial.unlink(missing_ok=True)
                        raise _disk_full((total or done) - done, free_bytes(partial.parent), done) from exc
                    raise
                filled += count
                done += count
                watchdog.done = done
                if remaining is not None:
                    remaining -= count
            hasher.give(buffer, filled)
        if watchdog.error is not None:
            raise watchdog.error
        if watchdog.stopped:
            raise Stopped
        if watchdog.stalled:
            raise HubError("stalled", f"No bytes arrived for {stall_seconds:.0f} s; resuming.", transient=True)
        if failure is not None:
            raise HubError("connection_lost", f"The connection dropped ({type(failure).__name__}); resuming.",
                           transient=True) from failure  # fmt: skip
    if total is not None and done < total:
        raise HubError("connection_lost", f"The connection closed after {human_bytes(done)}; resuming.",
                       transient=True)  # fmt: skip
    return done


def _write_all(handle, view: memoryview) -> None:
    while view:
        written = handle.write(view)
        view = view[written:]
