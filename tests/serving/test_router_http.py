"""The gateway's HTTP client for the router (config/serving/router_http.py) against a real socket server on
127.0.0.1 that answers with the bytes each test gives: the framings a router's answer may use, the request it
sends, and every way an answer can fail, which must come back as RouterHTTPError (the gateway's 502)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from config.serving import router_http
from config.serving.router_http import RouterHTTPError
from tests.serving.conftest import run_async
from tests.workers import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON = b'{"usage": {"completion_tokens": 3}}'


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return head, await reader.readexactly(length)


def answering(answer: bytes) -> Handler:
    async def handle(reader, writer) -> None:
        try:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()  # also when the client went away first (the too-long headers)

    return handle


async def with_server(handle: Handler, use: Callable[[str], Awaitable[object]]) -> object:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        return await use(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()


async def post(url: str, *, read_timeout: float = 10) -> router_http.RouterResponse:
    return await router_http.post(url, "/v1/chat/completions", b'{"model": "m"}', connect_timeout=5,
                                  read_timeout=read_timeout, headers={"X-Request-Id": "r1"})  # fmt: skip


async def status_and_body(url: str) -> tuple[int, dict[str, str], bytes]:
    response = await post(url)
    try:
        return response.status_code, response.headers, await response.aread()
    finally:
        await response.aclose()


def test_the_request_is_a_post_of_the_body_to_the_path_under_the_router_url():
    received = []

    async def handle(reader, writer) -> None:
        received.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        writer.close()

    status, _, body = run_async(with_server(handle, lambda url: status_and_body(url + "/router/")))

    head, sent = received[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /router/v1/chat/completions HTTP/1.1"
    assert "Content-Type: application/json" in lines and "Content-Length: 14" in lines
    assert "X-Request-Id: r1" in lines and "Connection: close" in lines
    assert any(line.startswith("Host: 127.0.0.1:") for line in lines)
    assert sent == b'{"model": "m"}'
    assert (status, body) == (200, b"{}")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(JSON), JSON),
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n" + JSON[:5] + b"\r\n" + b"%x;ext=1\r\n" % (len(JSON) - 5) + JSON[5:] + b"\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + JSON,  # ended by the close
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(JSON), JSON),
    ],
    ids=["content-length", "chunked", "until-close", "after-100-continue"],
)
def test_every_framing_of_the_answer_gives_the_same_body(answer):
    status, headers, body = run_async(with_server(answering(answer), status_and_body))

    assert (status, headers["content-type"], body) == (200, "application/json", JSON)


def test_an_error_status_comes_back_with_its_body():
    answer = b'HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\nX-A: 1\r\nX-A: 2\r\n\r\n{"e": 1}\n'

    status, headers, body = run_async(with_server(answering(answer), status_and_body))

    assert (status, headers["x-a"], body) == (400, "1, 2", b'{"e": 1}\n')


def test_a_chunked_stream_is_handed_on_as_each_chunk_arrives():
    second_may_come = asyncio.Event()

    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"b\r\ndata: one\n\n\r\n")
        await writer.drain()
        await second_may_come.wait()  # the client must have the first chunk before the second exists
        writer.write(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def use(url: str) -> list[bytes]:
        response = await post(url)
        pieces = []
        async for piece in response.aiter_raw():
            pieces.append(piece)
            second_may_come.set()
        await response.aclose()
        return pieces

    assert run_async(with_server(handle, use)) == [b"data: one\n\n", b"data: two\n\n"]


def test_closing_the_response_closes_the_connection_at_the_router():
    seen_closed = asyncio.Event()

    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        if await reader.read() == b"":  # end of file: the client closed its side
            seen_closed.set()
        writer.close()

    async def use(url: str) -> bool:
        response = await post(url)
        await anext(response.aiter_raw())
        response.close()
        await asyncio.wait_for(seen_closed.wait(), 10)
        return seen_closed.is_set()

    assert run_async(with_server(handle, use))


def test_nothing_listening_is_a_router_error():
    async def use() -> None:
        await post(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(RouterHTTPError, match="Connect"):
        run_async(use())


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 bytes of the answer to come"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", "connection closed after 5 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length 'ten'"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1 answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\n", "connection closed after"),
        (b"", "connection closed after 0 bytes"),
    ],
    ids=["short-body", "short-chunk", "bad-chunk-size", "bad-length", "not-http", "bad-header", "no-end-of-head",
         "nothing"],
)  # fmt: skip
def test_a_broken_answer_is_a_router_error(answer, says):
    with pytest.raises(RouterHTTPError, match=says):
        run_async(with_server(answering(answer), status_and_body))


def test_an_answer_past_the_read_timeout_is_a_router_error():
    async def handle(reader, writer) -> None:
        try:
            await read_request(reader)
            await reader.read()  # never answers; returns when the client gives up
        finally:
            writer.close()

    async def use(url: str) -> None:
        await post(url, read_timeout=0.2)

    with pytest.raises(RouterHTTPError, match=r"no answer within 0\.2 s"):
        run_async(with_server(handle, use))


def test_headers_past_the_limit_are_a_router_error():
    answer = b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * router_http.HEAD_LIMIT + b"\r\n\r\n"

    with pytest.raises(RouterHTTPError, match="too long"):
        run_async(with_server(answering(answer), status_and_body))


def test_an_address_that_is_not_http_is_refused():
    with pytest.raises(RouterHTTPError, match="not an http"):
        router_http.endpoint("ftp://127.0.0.1:1")
