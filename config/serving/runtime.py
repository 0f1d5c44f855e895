"""What the running router says about each model (issue 10, item 3), read cheaply enough for every page.

One `GET /models` per page render at most: the answer (or the failure) is kept for a few seconds per process, and
the call gives up after about a second, so a router that is down costs a page one short wait, then nothing until
the answer expires. Router ids are mapped back to alias names as the preset names them (router.py): the first
alias, in the preset's name order, whose router id it is.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.serving.router import RouterError, alias_for_router_id, router_get, router_id
from config.serving.services import router_url

STATUS_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 3.0
# status.value as llama-server reports it (tools/server/server-models.cpp).
STATE_BADGES = {
    "unloaded": "text-bg-secondary",
    "loading": "text-bg-info",
    "loaded": "text-bg-success",
    "sleeping": "text-bg-light",
    "failed": "text-bg-danger",
}


@dataclass(frozen=True)
class ModelState:
    router_id: str
    alias: str | None  # the alias the router serves under this id; None for a model that is none of ours
    state: str
    exit_code: int | None
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        return shlex.join(self.args)

    @property
    def badge(self) -> str:
        return STATE_BADGES.get(self.state, "text-bg-warning")

    @property
    def label(self) -> str:
        if self.state == "failed" and self.exit_code is not None:
            return f"failed (exit {self.exit_code})"
        return self.state

    @property
    def may_load(self) -> bool:
        return self.state in ("unloaded", "failed")

    @property
    def may_unload(self) -> bool:
        return self.state in ("loading", "loaded", "sleeping")

    def as_json(self) -> dict:
        return {
            "id": self.router_id,
            "alias": self.alias,
            "state": self.state,
            "exit_code": self.exit_code,
            "args": list(self.args),
        }


@dataclass(frozen=True)
class RouterStatus:
    url: str
    models: tuple[ModelState, ...] = ()
    error: str = ""  # why the router did not answer; empty when it did
    unavailable: bool = False  # True: not reachable at all (as opposed to answering with an error)
    by_id: dict[str, ModelState] = field(default_factory=dict, compare=False)

    @property
    def reachable(self) -> bool:
        return not self.error

    @property
    def note(self) -> str:
        return f"llama-server at {self.url} is not answering ({self.error})." if self.error else ""

    def for_alias(self, name: str) -> ModelState | None:
        """The router's model for the alias `name`, or None when the router serves no model for it."""
        model = self.by_id.get(router_id(name))
        if model is None or model.alias is None or model.alias.lower() != name.lower():
            return None
        return model


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _alias_names(ids: list[str]) -> list[str]:
    """The aliases that may be called by `ids`, in the preset's order (one query)."""
    from aliases.models import Alias

    query = Q()
    for model_id in ids:
        head, colon, _ = model_id.rpartition(":")
        query |= Q(alias__istartswith=f"{head}:") if colon else Q(alias=model_id)
    if not query:
        return []
    return list(Alias.objects.filter(query).values_list("alias", flat=True))


def _parse(url: str, answer: object) -> RouterStatus:
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        return RouterStatus(url=url, error="its GET /models answer holds no model list")
    raw = [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]
    names = _alias_names([item["id"] for item in raw])
    models = []
    for item in raw:
        status = item.get("status") if isinstance(item.get("status"), dict) else {}
        args = status.get("args") if isinstance(status.get("args"), list) else []
        models.append(
            ModelState(
                router_id=item["id"],
                alias=alias_for_router_id(item["id"], names),
                # A model whose process exited is listed as `unloaded` with `failed: true` and its exit code.
                state="failed" if status.get("failed") is True else str(status.get("value") or "unknown"),
                exit_code=_int_or_none(status.get("exit_code")),
                args=tuple(str(arg) for arg in args),
            )
        )
    return RouterStatus(url=url, models=tuple(models), by_id={model.router_id: model for model in models})


_lock = threading.Lock()
_cached: dict[str, tuple[float, RouterStatus]] = {}


def router_status(*, fresh: bool = False) -> RouterStatus | None:
    """The configured router's models and their states (None when no router is configured); at most one
    `GET /models` per CACHE_SECONDS per process unless `fresh`."""
    url = router_url()
    if not url:
        return None
    now = time.monotonic()
    with _lock:
        cached = _cached.get(url)
    if not fresh and cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        status = _parse(url, router_get(url, "/models", timeout=STATUS_TIMEOUT_SECONDS))
    except RouterError as exc:
        status = RouterStatus(url=url, error=exc.reason, unavailable=exc.status is None)
    with _lock:
        _cached[url] = (time.monotonic(), status)
    return status


def router_status_forget() -> None:
    """Drop the kept answers: after a load or unload the next page asks the router again."""
    with _lock:
        _cached.clear()


def router_state_badge(status: RouterStatus | None, name: str) -> SafeString | str:
    """The alias `name`'s state on the router as a badge (the alias list's Server column); "" without a router."""
    if status is None:
        return ""
    if not status.reachable:
        return format_html('<span class="badge text-bg-warning" data-router-state="down" title="{}">?</span>',
                           status.note)  # fmt: skip
    model = status.for_alias(name)
    if model is None:
        return format_html('<span class="text-body-secondary" data-router-state="absent" title="{}">—</span>',
                           "Not served by the router")  # fmt: skip
    return format_html('<span class="badge {}" data-router-state="{}" title="{}">{}</span>',
                       model.badge, model.state, model.command, model.label)  # fmt: skip
