"""The OpenAI-compatible gateway (issue 10, item 5): `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/completions`, with an alias's name as the model.

Async Django views, served by `config.asgi:application` (uvicorn), so a stream waiting on the router holds a
coroutine rather than a process or a thread. A request is answered in this order: the API token (401), the method
(405), the JSON body (400), the alias (404 unknown, 409 not served and why), the router (503 not configured, 502
not answering); then it goes to the router with `model` replaced by the router's id and the alias's request
parameters filled in where the request leaves them unset (absent or null). The router's answer comes back as it
is, with its status; its errors in OpenAI's error shape.

Kept off the hot path: the shelf (which aliases serve, under which router id, with which defaults) is built from
the database at most once per SHELF_SECONDS per process, and again as soon as the preset file was rewritten; a
verified token is trusted for TOKEN_SECONDS (so a revoked token may still pass that long); token counts are added
up in memory and written by a background task at most every USAGE_FLUSH_SECONDS (so a process that is killed
loses at most that much). The router is called with router_http, a connection per request (the router closes
each after one completion anyway), at a fraction of httpx's CPU per request.

Streams: the router's server-sent events are relayed as they arrive, cut only at event boundaries. The gateway
counts tokens from the final `usage` chunk, so it asks the router for one (`stream_options.include_usage`) when
the client did not, and then drops that chunk (the one with no choices) instead of handing the client a chunk
shape it did not ask for. A client that goes away ends the relay; closing it closes the router's response, and
with it the generation there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from config.api import error_body, error_type
from config.api_parsers import body_too_large_message
from config.serving import router_http
from config.serving.router_http import RouterHTTPError

logger = logging.getLogger(__name__)

SHELF_SECONDS = 2.0
TOKEN_SECONDS = 5.0
USAGE_FLUSH_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 5.0
# A first request may wait for the router to load the model, and a long answer takes its time.
READ_TIMEOUT_SECONDS = 600.0
# The request parameters of an alias (DESIGN.md) are named as OpenAI's fields; max_tokens also stands aside for
# the other names a request may give its limit.
DEFAULT_FIELDS = ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "seed", "stop", "user")
LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "n_predict")
OWNER = "modeldesk"


class GatewayError(Exception):
    """An answer in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, message: str, *, status: int, code: str, param: str | None = None, **headers: str):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers

    def response(self) -> JsonResponse:
        body = error_body(status=self.status, message=self.message, code=self.code, param=self.param)
        return JsonResponse(body, status=self.status, headers=self.headers)


# Under ASGI the gateway's database work (a token not seen for TOKEN_SECONDS, a shelf rebuild, the usage writes)
# runs in one thread of its own that keeps its connection: opening one per call costs more than the query (and on
# SQLite, closing the last connection checkpoints the WAL file every time).
_database_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db")


async def in_thread(request: HttpRequest, function: Callable[..., Any], *args: Any) -> Any:
    """Run database code off the event loop: under ASGI in the gateway's database thread; under WSGI, where every
    request runs in an event loop of its own (the test client too), in the request's thread, whose connections
    Django's request cycle closes."""
    if isinstance(request, ASGIRequest):
        return await in_database_thread(function, *args)
    return await sync_to_async(function)(*args)


def database_thread_close() -> None:
    """Close the database thread's connections (tests: a test database is dropped only without them)."""
    _database_thread.submit(connections.close_all).result()


async def in_database_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await sync_to_async(_with_usable_connections(function), thread_sensitive=False, executor=_database_thread)(
        *args
    )


def _with_usable_connections(function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        for connection in connections.all(initialized_only=True):
            if connection.connection is not None and not connection.is_usable():
                connection.close()  # a server that closed an idle connection: open a new one
        try:
            return function(*args)
        except Exception:
            # The connection may be what failed (a database restarted): the next call opens a new one.
            connections.close_all()
            raise

    return run


def gateway_view(view: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """What the site's middleware does for an API answer, for the gateway's handler that runs none: Django's
    SecurityMiddleware (the https redirect, nosniff, HSTS over https, ...) run inline, since it does no I/O, and
    `private, no-store` (answers are a user's); the host checked against ALLOWED_HOSTS; no CSRF check (token auth
    only)."""

    @csrf_exempt
    @functools.wraps(view)
    async def wrapped(request: HttpRequest) -> HttpResponse:
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it for the site: DisallowedHost is a 400
        security = _security(view)
        response = security.process_request(request) or await view(request)
        security.process_response(request, response)
        if "Cache-Control" in response:
            patch_cache_control(response, private=True, no_store=True)
        else:
            response["Cache-Control"] = "private, no-store"  # what patch_cache_control writes, at a tenth the cost
        return response

    return wrapped


@functools.cache
def _security(view: Callable[..., Any]) -> SecurityMiddleware:
    """The view's SecurityMiddleware, made once: it reads its settings when made (again after a change, below)."""
    return SecurityMiddleware(view)


@receiver(setting_changed)
def _kept_settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _day
    if setting.startswith("SECURE_"):
        _security.cache_clear()
    if setting in ("TIME_ZONE", "USE_TZ"):
        _day = (-1, None)


# --- the request parameters ----------------------------------------------------------------------------------------


def with_defaults(body: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with each of `defaults` filled in where the body leaves it unset (absent or null)."""
    merged = dict(body)
    for name, value in defaults.items():
        if merged.get(name) is not None:
            continue
        if name == "max_tokens" and any(merged.get(limit) is not None for limit in LIMIT_FIELDS):
            continue
        merged[name] = value
    return merged


def alias_defaults(alias: Any) -> dict[str, Any]:
    """The request parameters `alias` sets (unset ones, and an empty stop list, are left to the request)."""
    defaults = {}
    for name in DEFAULT_FIELDS:
        value = getattr(alias, name)
        if value is None or value == [] or value == "":
            continue
        defaults[name] = list(value) if name == "stop" else value
    return defaults


# --- which aliases serve -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayModel:
    alias: str
    router_id: str
    defaults: Mapping[str, Any]
    created: int


@dataclass(frozen=True)
class Shelf:
    models: Mapping[str, GatewayModel]  # by the alias's name in lower case (names are case-insensitive)
    refused: Mapping[str, tuple[str, str]]  # lower-case name: (name, why the preset leaves it out)

    def model(self, name: str) -> GatewayModel:
        key = name.lower()
        served = self.models.get(key)
        if served is not None:
            return served
        if key in self.refused:
            alias, reason = self.refused[key]
            raise GatewayError(
                f"The alias {alias} cannot be served: {reason.rstrip('.')}. Pull its file (or fix the alias) and see "
                f"{reverse('serving:index')} for what the router serves.",
                status=409,
                code="model_not_served",
                param="model",
            )
        raise GatewayError(
            f"The model {name!r} does not exist: use the name of an alias (GET /v1/models lists those served).",
            status=404,
            code="model_not_found",
            param="model",
        )


def shelf_build() -> Shelf:
    """Which aliases the preset serves, under which router id and with which request parameters (the database
    and the cache as they are now; the same preset the router is given)."""
    from aliases.models import Alias
    from config.serving.preset import preset_build
    from config.serving.services import preset_path

    aliases = list(Alias.objects.all())
    path = preset_path()
    preset = preset_build(aliases=aliases, template_dir=path.parent if path else None)
    by_name = {alias.alias: alias for alias in aliases}
    models = {}
    for served in preset.served:
        alias = by_name[served.alias]
        models[served.alias.lower()] = GatewayModel(
            alias=served.alias,
            router_id=served.router_id,
            defaults=alias_defaults(alias),
            created=int(alias.created_at.timestamp()),
        )
    refused = {item.alias.lower(): (item.alias, item.reason) for item in preset.unserved}
    return Shelf(models=models, refused=refused)


_shelf_lock = threading.Lock()
_shelf: tuple[float, object, Shelf] | None = None
_refresh_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _preset_stamp() -> object:
    """What tells a rewritten preset file from the one the shelf was built with (a rename gives a new inode)."""
    from config.serving.services import preset_path

    path = _cached_path(preset_path)
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


_path_cache: tuple[str, str | None] = ("", None)


def _cached_path(preset_path: Callable[[], Any]) -> str | None:
    """preset_path() as a string, worked out again only when the setting changes (every request stats it)."""
    global _path_cache
    value = getattr(settings, "MODELDESK_LLAMA_PRESET_PATH", "")
    if _path_cache[0] != value:
        path = preset_path()
        _path_cache = (value, str(path) if path else None)
    return _path_cache[1]


def _kept(stamp: object) -> Shelf | None:
    kept = _shelf
    if kept is None or time.monotonic() - kept[0] >= SHELF_SECONDS or kept[1] != stamp:
        return None
    return kept[2]


async def current_shelf(request: HttpRequest) -> Shelf:
    """The shelf as built at most SHELF_SECONDS ago, and never older than the preset file: a change that rewrites
    it (an alias created, deleted, its file pulled) is seen by the next request, in every process."""
    global _shelf
    stamp = _preset_stamp()
    shelf = _kept(stamp)
    if shelf is not None:
        return shelf
    lock = _refresh_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:  # one rebuild at a time per loop: the others wait for it instead of each doing it
        shelf = _kept(stamp)
        if shelf is not None:
            return shelf
        shelf = await in_thread(request, shelf_build)
        with _shelf_lock:
            _shelf = (time.monotonic(), stamp, shelf)
        return shelf


def shelf_forget() -> None:
    global _shelf
    with _shelf_lock:
        _shelf = None


# --- API tokens ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trusted:
    user: Any
    expires_at: Any
    checked: float


_tokens: dict[str, _Trusted] = {}
TOKEN_CACHE_SIZE = 10_000


def _verify_token(raw: str, address: str) -> Any:
    from config.accounts.services import TokenRefused, apitoken_verify, bearerfailure_record, bearerfailure_wait

    wait = bearerfailure_wait(address=address)
    if wait:
        raise GatewayError(
            f"Too many invalid API tokens from your address. Try again in {wait} seconds.",
            status=429,
            code="too_many_token_failures",
            **{"Retry-After": str(wait)},
        )
    try:
        return apitoken_verify(raw=raw)
    except TokenRefused as refused:
        bearerfailure_record(address=address)
        raise GatewayError(
            str(refused), status=401, code="invalid_api_key", **{"WWW-Authenticate": "Bearer"}
        ) from refused


async def authenticate(request: HttpRequest) -> Any:
    """The user of the request's `Authorization: Bearer <ModelDesk API token>`; GatewayError 401 without one.

    Only a token: the session cookie is not accepted, since these views take no CSRF token and a page on another
    site could otherwise make a signed-in browser spend its user's tokens."""
    from config.accounts.addresses import client_address
    from config.accounts.models import hash_token

    # META rather than request.headers, which builds a dict of every header first.
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise GatewayError(
            "Send a ModelDesk API token as `Authorization: Bearer <token>` (the My API tokens page makes one).",
            status=401,
            code="missing_api_key",
            **{"WWW-Authenticate": "Bearer"},
        )
    key = hash_token(parts[1])
    trusted = _tokens.get(key)
    now = time.monotonic()
    fresh = trusted is not None and now - trusted.checked < TOKEN_SECONDS
    if fresh and (trusted.expires_at is None or trusted.expires_at > timezone.now()):
        return trusted.user
    token = await in_thread(request, _verify_token, parts[1], client_address(request))
    if len(_tokens) >= TOKEN_CACHE_SIZE:
        _tokens.clear()
    _tokens[key] = _Trusted(user=token.user, expires_at=token.expires_at, checked=time.monotonic())
    return token.user


def tokens_forget() -> None:
    _tokens.clear()


# --- usage -----------------------------------------------------------------------------------------------------------


def usage_counted(*, alias: str, user_id: int, usage: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """(key, count) of one answered request whose answer carried `usage` (None: a request with 0 tokens)."""
    from config.serving.services import UsageCount, UsageKey

    key = UsageKey(alias=alias, user_id=user_id, day=_today())
    count = UsageCount(
        requests=1,
        prompt_tokens=_tokens_of(usage, "prompt_tokens"),
        completion_tokens=_tokens_of(usage, "completion_tokens"),
    )
    return key, count


_day: tuple[int, Any] = (-1, None)


def _today() -> Any:
    """timezone.localdate(), worked out once a second (a tenth of the gateway's own work per request otherwise):
    a request in the first second of a day may be counted on the day before."""
    global _day
    second = int(time.time())
    if _day[0] != second:
        _day = (second, timezone.localdate())
    return _day[1]


@dataclass
class UsageBatch:
    """Token counts added up in memory and written by one background task per event loop: the first right away,
    then at most every USAGE_FLUSH_SECONDS while more come in."""

    pending: dict[Any, Any] = field(default_factory=dict)
    task: asyncio.Task | None = None

    def add(self, key: Any, count: Any) -> None:
        total = self.pending.get(key)
        if total is None:
            self.pending[key] = count
        else:
            total.requests += count.requests
            total.prompt_tokens += count.prompt_tokens
            total.completion_tokens += count.completion_tokens
        if self.task is None or self.task.done():
            # A context of its own: the request's (and its thread-sensitive executor) ends before the task does.
            self.task = asyncio.get_running_loop().create_task(self._flush(), context=contextvars.Context())

    async def _flush(self) -> None:
        while self.pending:
            counts, self.pending = self.pending, {}
            try:
                await in_database_thread(_write_usage, counts)
            except Exception:
                logger.exception("could not record gateway usage for %d key(s)", len(counts))
            await asyncio.sleep(USAGE_FLUSH_SECONDS)

    async def drain(self) -> None:
        """Wait until what was added is written (tests, and a clean shutdown)."""
        while self.task is not None and not self.task.done():
            await asyncio.shield(self.task)


def _write_usage(counts: Mapping[Any, Any]) -> None:
    from config.serving.services import servingusage_add

    servingusage_add(counts=counts)


async def usage_record(request: HttpRequest, *, alias: str, user_id: int, usage: Mapping[str, Any] | None) -> None:
    key, count = usage_counted(alias=alias, user_id=user_id, usage=usage)
    if isinstance(request, ASGIRequest):
        usage_batch().add(key, count)
        return
    # Under WSGI every request runs in an event loop of its own that ends with it, and a task left behind would
    # be cancelled: write now, in the request's thread.
    from config.serving.services import servingusage_add

    await in_thread(request, lambda: servingusage_add(counts={key: count}))


def _tokens_of(usage: Mapping[str, Any] | None, name: str) -> int:
    value = usage.get(name) if isinstance(usage, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UsageBatch] = weakref.WeakKeyDictionary()


def usage_batch() -> UsageBatch:
    return _batches.setdefault(asyncio.get_running_loop(), UsageBatch())


# --- the router ------------------------------------------------------------------------------------------------------


def _router_url() -> str:
    from config.serving.services import router_url

    url = router_url()
    if not url:
        raise GatewayError(
            "No llama-server router is configured: set MODELDESK_LLAMA_SERVER_URL (see docs/SERVING.md).",
            status=503,
            code="router_not_configured",
        )
    return url.rstrip("/")


def _unreachable(url: str, exc: RouterHTTPError) -> GatewayError:
    return GatewayError(
        f"llama-server at {url} is not answering ({exc}).",
        status=502,
        code="router_unavailable",
    )


def upstream_error(status: int, content: bytes) -> JsonResponse:
    """The router's error answer in OpenAI's shape, with its status (llama-server's own is close to it, with an
    integer `code`)."""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        code = error.get("code")
        param = error.get("param")
    else:
        message, kind, code, param = (error if isinstance(error, str) else None), None, None, None
    message = str(message or content.decode(errors="replace").strip()[:1000] or f"HTTP {status}")
    body = {
        "error": {
            "message": f"llama-server: {message}",
            "type": kind if isinstance(kind, str) and kind else error_type(status),
            "param": param if isinstance(param, str) else None,
            "code": code if isinstance(code, str) and code else "router_error",
        }
    }
    return JsonResponse(body, status=status if 400 <= status < 600 else 502)


# --- the views -------------------------------------------------------------------------------------------------------


def _allow(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise GatewayError(
            f"{request.method} is not allowed here; use {method}.", status=405, code="method_not_allowed", Allow=method
        )


def _json_body(request: HttpRequest, *, required: str) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        from config.api_parsers import body_limit

        raise GatewayError(body_too_large_message(body_limit() or 0), status=413, code="request_too_large") from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(f"The body is not valid JSON: {exc}.", status=400, code="invalid_json") from exc
    if not isinstance(body, dict):
        raise GatewayError("The body must be a JSON object.", status=400, code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            "`model` is required: the name of an alias.", status=400, code="invalid_model", param="model"
        )
    if required not in body:
        raise GatewayError(f"`{required}` is required.", status=400, code="missing_field", param=required)
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise GatewayError("`stream` must be true or false.", status=400, code="invalid_type", param="stream")
    if not isinstance(body.get("stream_options"), dict | None):
        raise GatewayError(
            "`stream_options` must be an object.", status=400, code="invalid_type", param="stream_options"
        )
    return body


@gateway_view
async def models(request: HttpRequest) -> HttpResponse:
    """`GET /v1/models`: the aliases the router serves, by name, in OpenAI's list shape."""
    try:
        user = await authenticate(request)
        _allow(request, "GET")
        shelf = await current_shelf(request)
    except GatewayError as exc:
        return exc.response()
    request.user = user
    data = [{"id": m.alias, "object": "model", "created": m.created, "owned_by": OWNER} for m in shelf.models.values()]
    return JsonResponse({"object": "list", "data": data})


@gateway_view
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _forward(request, path="/v1/chat/completions", required="messages")


@gateway_view
async def completions(request: HttpRequest) -> HttpResponse:
    return await _forward(request, path="/v1/completions", required="prompt")


async def _forward(request: HttpRequest, *, path: str, required: str) -> HttpResponse:
    try:
        user = await authenticate(request)
        _allow(request, "POST")
        body = _json_body(request, required=required)
        model = (await current_shelf(request)).model(body["model"])
        url = _router_url()
    except GatewayError as exc:
        return exc.response()
    # The token's user, set here so that the site's middleware, where it runs (the test client, a WSGI server),
    # sees a signed-in answer without looking a session up.
    request.user = user
    upstream = with_defaults(body, model.defaults)
    upstream["model"] = model.router_id
    stream = body.get("stream") is True
    client_wants_usage = False
    if stream:
        options = dict(body.get("stream_options") or {})
        client_wants_usage = options.get("include_usage") is True
        upstream["stream_options"] = {**options, "include_usage": True}
    try:
        response = await router_http.post(
            url,
            path,
            router_http.json_body(upstream),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
        )
    except RouterHTTPError as exc:
        return _unreachable(url, exc).response()

    async def counted(usage: Mapping[str, Any] | None) -> None:
        await usage_record(request, alias=model.alias, user_id=user.pk, usage=usage)

    renamed = model_renamer(router_id=model.router_id, alias=model.alias)

    try:
        if response.status_code >= 400:
            return upstream_error(response.status_code, await response.aread())
        if stream and response.headers.get("content-type", "").startswith("text/event-stream"):
            relay = _relay(response, keep_usage=client_wants_usage, on_end=counted, renamed=renamed)
            response = None  # the relay owns it now, and closes it
            return StreamingHttpResponse(
                relay,
                content_type="text/event-stream",
                headers={"X-Accel-Buffering": "no"},  # nor may a proxy in front hold the events back
            )
        status = response.status_code
        content = await response.aread()
    except RouterHTTPError as exc:
        return _unreachable(url, exc).response()
    finally:
        if response is not None:
            await response.aclose()
    usage = None
    if b'"usage"' in content:
        try:
            answer = json.loads(content)
            usage = answer.get("usage") if isinstance(answer, dict) else None
        except ValueError:
            pass
    await counted(usage)
    return HttpResponse(renamed(content), status=status, content_type=response_type(content))


@functools.lru_cache(maxsize=1024)
def model_renamer(*, router_id: str, alias: str) -> Callable[[bytes], bytes]:
    """Answers name the model as the client asked for it (the alias), not by the router's id (`tiny:CHAT`): a
    client that checks or shows `model` sees its own name. A byte replace of the JSON member, both spacings the
    router may write; text inside the answer cannot match, its quotes are escaped."""
    if router_id == alias:
        return lambda content: content
    old, new = json.dumps(router_id).encode(), json.dumps(alias).encode()
    pairs = [(b'"model":' + old, b'"model":' + new), (b'"model": ' + old, b'"model": ' + new)]

    def rename(content: bytes) -> bytes:
        for before, after in pairs:
            content = content.replace(before, after)
        return content

    return rename


def response_type(content: bytes) -> str:
    return "application/json" if content[:1] in (b"{", b"[") else "text/plain; charset=utf-8"


async def _relay(
    response: router_http.RouterResponse, *, keep_usage: bool, on_end: Any, renamed: Callable[[bytes], bytes]
) -> AsyncIterator[bytes]:
    """The router's events as they come, each whole; the last `usage` seen is handed to `on_end`."""
    usage: dict | None = None
    pending = b""
    try:
        async for chunk in response.aiter_raw():
            pending += chunk
            cut = pending.rfind(b"\n\n")
            if cut < 0:
                continue
            events, pending = pending[: cut + 2], pending[cut + 2 :]
            if b'"usage"' in events:
                events, found = _take_usage(events, keep_usage=keep_usage)
                usage = found or usage
            if events:
                yield renamed(events)
        if pending:
            yield renamed(pending)
    except RouterHTTPError as exc:
        # The router went away mid-answer: say so the way llama-server reports errors in a stream.
        logger.warning("llama-server stream ended early: %s", exc)
        message = json.dumps(
            {"error": {"message": f"llama-server: the answer broke off ({exc})", "type": "server_error"}}
        )
        yield f"error: {message}\n\n".encode()
    finally:
        response.close()  # first, whatever happens next: the router stops a generation nobody reads any more
        await on_end(usage)
        await response.aclose()


def _take_usage(events: bytes, *, keep_usage: bool) -> tuple[bytes, dict | None]:
    """(the events to forward, the usage they carry): without `keep_usage` the usage-only chunk is left out."""
    usage = None
    kept = []
    for event in events.split(b"\n\n")[:-1]:
        payload = _event_data(event) if b'"usage"' in event else None
        found = payload.get("usage") if isinstance(payload, dict) else None
        if isinstance(found, dict):
            usage = found
            if not keep_usage and not payload.get("choices"):
                continue
        kept.append(event + b"\n\n")
    return b"".join(kept), usage


def _event_data(event: bytes) -> Any:
    data = b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
    try:
        return json.loads(data)
    except ValueError:
        return None
