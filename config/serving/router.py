"""llama-server's router mode as ModelDesk sees it: the id it gives each alias, and the calls we make to it.

The router normalises a preset's section name (common/preset.cpp, `canonical_tag`): the part after the last colon
(the "tag") is upper-cased, and when the tag ends in `-X` or `.X` with X made of letters, digits and `_`, only X is
kept. So `tiny:chat` is routed as `tiny:CHAT` and `llama3:instruct-q4` as `llama3:Q4`. `router_id` does the same;
the way back (`alias_for_router_id`) is a lookup among the aliases, since two names can share one id (the preset
serves the first and lists the other as unservable).
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

_TAG_TAIL = re.compile(r"[-.]([A-Za-z0-9_]+)\Z")
# The router's own section names: `*` holds the defaults; keys before any section land in `default`.
RESERVED_SECTIONS = frozenset({"*", "default"})
RELOAD_TIMEOUT_SECONDS = 5.0


def router_id(name: str) -> str:
    """The id llama-server's router lists and routes `name` by (a preset section named `name`)."""
    head, colon, tag = name.rpartition(":")
    if not colon:
        return name
    tail = _TAG_TAIL.search(tag)
    canonical = (tail.group(1) if tail else tag).upper()
    return f"{head}:{canonical}"


def alias_for_router_id(model_id: str, names: Iterable[str]) -> str | None:
    """The first of `names` (in the preset's order) that the router calls `model_id`, or None."""
    return next((name for name in names if router_id(name) == model_id), None)


class RouterError(Exception):
    """The router could not be reached (`status` None) or answered with an HTTP error (`status` its code)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason or message


def _error_reason(exc: urllib.error.HTTPError) -> str:
    """The router's own message in an error answer (`{"error": {"message": ...}}`), else the HTTP reason."""
    try:
        data = json.loads(exc.read() or b"null")
        message = data["error"]["message"] if isinstance(data, dict) and isinstance(data.get("error"), dict) else ""
    except (OSError, ValueError, KeyError, TypeError):
        message = ""
    return str(message) or f"HTTP {exc.code} {exc.reason}"


def _call(url: str, *, data: bytes | None, timeout: float) -> Any:
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        reason = _error_reason(exc)
        raise RouterError(f"{url}: {reason}", status=exc.code, reason=reason) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RouterError(f"{url}: {exc}", reason=str(getattr(exc, "reason", exc))) from exc
    try:
        return json.loads(body) if body else None
    except ValueError as exc:
        raise RouterError(f"{url}: not JSON ({exc})", status=502, reason="not JSON") from exc


def router_get(base_url: str, path: str, *, query: Mapping[str, str] | None = None, timeout: float = 5.0) -> Any:
    """GET `path` on the router and return its JSON answer."""
    url = base_url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return _call(url, data=None, timeout=timeout)


def router_post(base_url: str, path: str, body: Mapping[str, Any], *, timeout: float = 5.0) -> Any:
    """POST `body` as JSON to `path` on the router and return its JSON answer."""
    return _call(base_url.rstrip("/") + path, data=json.dumps(dict(body)).encode(), timeout=timeout)


def router_reload(base_url: str) -> bool:
    """Tell the router to read its preset file again (`GET /models?reload=1`). Logs and returns False on failure:
    the preset file is written already, and the next change (or a restart) brings the router up to date."""
    try:
        router_get(base_url, "/models", query={"reload": "1"}, timeout=RELOAD_TIMEOUT_SECONDS)
    except RouterError as exc:
        logger.warning("llama-server router did not reload its preset: %s", exc)
        return False
    return True
