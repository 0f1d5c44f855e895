"""The gateway's HTTP client for the router: one POST per connection, HTTP/1.1 over asyncio's streams.

Why not httpx, which the rest of the project uses: against a stand-in router that answers at once, httpx spent
about 0.84 ms of CPU per request (its request and response models, httpcore's pool, h11, anyio's layer) where
asyncio's streams spend 0.06 ms, and on two cores the gateway's CPU is taken from the router it waits on. httpx's
pool bought nothing here either: the router closes every connection after one completion (docs/SERVING.md).

What the router's answers need, and no more: the status line and headers; a body framed by Content-Length,
chunked transfer coding (its event streams) or the end of the connection; a timeout on the connect and on every
read; closing the response closes the socket, which is what tells the router to stop a generation. No redirects,
cookies, proxies, compression or keep-alive: the router uses none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

# The status line and headers together; llama-server's are a few hundred bytes.
HEAD_LIMIT = 64 * 1024
PIECE = 64 * 1024
_NO_BODY = frozenset({204, 304})
_Result = TypeVar("_Result")


class RouterHTTPError(Exception):
    """The router could not be reached, or its answer broke off, timed out or was not HTTP."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    ssl: ssl.SSLContext | None
    host_header: str
    prefix: str  # the URL's path, without its trailing slash: where the router's own paths start


@functools.lru_cache(maxsize=16)
def endpoint(url: str) -> Endpoint:
    """Where `url` (the configured router, `http://host:port[/prefix]`) sends requests."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RouterHTTPError(f"{url!r} is not an http:// or https:// address")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        raise RouterHTTPError(f"{url!r}: {exc}") from exc
    return Endpoint(
        host=parts.hostname,
        port=port,
        ssl=ssl.create_default_context() if secure else None,
        host_header=parts.netloc.rpartition("@")[2],
        prefix=parts.path.rstrip("/"),
    )


def _failure(exc: BaseException) -> RouterHTTPError:
    if isinstance(exc, asyncio.IncompleteReadError):
        return RouterHTTPError(f"the connection closed after {len(exc.partial)} bytes of {exc.expected or 'more'}")
    if isinstance(exc, asyncio.LimitOverrunError):
        return RouterHTTPError("the answer's headers are too long")
    return RouterHTTPError(f"{type(exc).__name__}: {exc or 'no detail'}")


async def _within(seconds: float, what: str, awaitable: Awaitable[_Result]) -> _Result:
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError as exc:
        raise RouterHTTPError(f"no {what} within {seconds:g} s") from exc
    except (OSError, EOFError, asyncio.LimitOverrunError, ValueError) as exc:
        # OSError: refused, reset, broken pipe, TLS; EOFError: IncompleteReadError; ValueError: a line past the
        # reader's limit.
        raise _failure(exc) from exc


class RouterResponse:
    """The router's answer: `status` and `headers` (names in lower case) at once, the body read on demand."""

    def __init__(
        self,
        *,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        read_timeout: float,
    ) -> None:
        self.status_code = status
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self._read_timeout = read_timeout
        self._per_read = True

    def _read(self, awaitable: Awaitable[_Result]) -> Awaitable[_Result]:
        # A timeout costs about as much as the read it guards: aread() sets one for the whole body instead.
        return _within(self._read_timeout, "answer", awaitable) if self._per_read else awaitable

    async def aread(self) -> bytes:
        """The whole body, within one read timeout (the router sends a whole answer at once, once it is made)."""
        self._per_read = False
        return await _within(self._read_timeout, "answer", self._whole())

    async def _whole(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_raw()])

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (without its transfer coding)."""
        if self.status_code in _NO_BODY:
            return
        coding = self.headers.get("transfer-encoding", "").lower()
        if coding.rsplit(",", 1)[-1].strip() == "chunked":
            async for piece in self._chunked():
                yield piece
            return
        length = self.headers.get("content-length")
        if length is not None:
            try:
                left = int(length.split(",")[0])
            except ValueError as exc:
                raise RouterHTTPError(f"Content-Length {length!r} is not a number") from exc
            while left > 0:
                piece = await self._read(self._reader.read(min(left, PIECE)))
                if not piece:
                    raise RouterHTTPError(f"the connection closed with {left} bytes of the answer to come")
                left -= len(piece)
                yield piece
            return
        while piece := await self._read(self._reader.read(PIECE)):  # framed by the end of the connection
            yield piece

    async def _chunked(self) -> AsyncIterator[bytes]:
        while (piece := await self._read(self._next_chunk())) is not None:
            yield piece

    async def _next_chunk(self) -> bytes | None:
        """The next chunk's data, or None after the last (its trailers read)."""
        reader = self._reader
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise RouterHTTPError("the connection closed inside a chunked answer")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise RouterHTTPError(f"bad chunk size line {line[:40]!r}") from exc
        if size == 0:
            while (await reader.readline()).strip():  # trailers, up to the empty line
                pass
            return None
        return (await reader.readexactly(size + 2))[:-2]  # the chunk and its CRLF

    def close(self) -> None:
        """Close the connection now (the router takes that as the client gone, and stops what it was doing)."""
        self._writer.close()

    async def aclose(self) -> None:
        """Close the connection and wait until the socket is released."""
        self._writer.close()
        with contextlib.suppress(OSError):  # closed either way
            await self._writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise RouterHTTPError(f"not an HTTP/1 answer: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise RouterHTTPError(f"bad header line {line[:60]!r}")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), headers


async def _head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, dict[str, str]]:
    await writer.drain()
    while True:
        status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if not 100 <= status < 200:  # an interim answer (100 Continue) is followed by the real one
            return status, headers


async def post(
    url: str,
    path: str,
    body: bytes,
    *,
    connect_timeout: float,
    read_timeout: float,
    headers: Mapping[str, str] | None = None,
) -> RouterResponse:
    """POST `body` (JSON, with `headers` besides the framing's own) to `path` under `url`; the answer once its
    headers are in."""
    where = endpoint(url)
    reader, writer = await _within(
        connect_timeout,
        "connection",
        asyncio.open_connection(where.host, where.port, ssl=where.ssl, limit=HEAD_LIMIT),
    )
    try:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) if headers else ""
        request = (
            f"POST {where.prefix}{path} HTTP/1.1\r\nHost: {where.host_header}\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
        ).encode("latin-1")
        writer.write(request + body)
        status, answer_headers = await _within(read_timeout, "answer", _head(reader, writer))
    except BaseException:
        writer.close()
        raise
    return RouterResponse(
        reader=reader, writer=writer, status=status, headers=answer_headers, read_timeout=read_timeout
    )


def json_body(data: Any) -> bytes:
    """`data` as the compact UTF-8 JSON the router is sent."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
