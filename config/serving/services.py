"""Writing the llama-server preset and keeping a running router in step with the shelf (issue 10, items 1-2).

With `MODELDESK_LLAMA_PRESET_PATH` set, every committed change to an alias or a model file rewrites that file
(and the chat template files beside it) atomically, once per transaction however many rows it changed, and only
when its content changed; with `MODELDESK_LLAMA_SERVER_URL` set, the router is then told to read it again.
Failures are logged, never raised: the change that triggered the sync is committed already.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F

from aliases.models import Alias
from config.audit.models import AuditEntry
from config.serving.models import ServingUsage
from config.serving.preset import Preset, preset_build
from config.serving.router import RouterError, router_post, router_reload
from modelfiles import cache

logger = logging.getLogger(__name__)


# The names config/serving/preset.py gives the chat template files it writes beside the preset.
TEMPLATE_GLOB = "chat-template.*.jinja"


def preset_path() -> Path | None:
    """The preset file the router reads (MODELDESK_LLAMA_PRESET_PATH), or None when ModelDesk keeps none."""
    value = getattr(settings, "MODELDESK_LLAMA_PRESET_PATH", "")
    return Path(value).expanduser().absolute() if value else None


def router_url() -> str:
    return getattr(settings, "MODELDESK_LLAMA_SERVER_URL", "")


def preset_current() -> Preset:
    """The preset for the shelf as it is, with template files beside the configured preset path (if any)."""
    path = preset_path()
    return preset_build(template_dir=path.parent if path else None)


def _write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` under a temporary name and rename it into place, unless `path` holds it already."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, ValueError):
        pass
    cache._atomic_write_text(path, text)  # a temporary file renamed into place, as the cache refs are
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Render and write under one lock: a process that rendered before another's commit must not replace the
    # newer file with its older view after it.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def preset_write(*, path: Path, preset: Preset | None = None) -> bool:
    """Write the preset (built now unless given) and its template files to `path`; whether the preset changed.

    The template files go first: the preset that names them must never be read before they exist.
    """
    with _locked(path):
        preset = preset if preset is not None else preset_build(template_dir=path.parent)
        for name, text in preset.template_files.items():
            _write_if_changed(path.parent / name, text)
        changed = _write_if_changed(path, preset.text)
        _remove_stale_templates(path.parent, keep=set(preset.template_files))
        return changed


def _remove_stale_templates(folder: Path, *, keep: set[str]) -> None:
    """Template files no alias names any more go, once the preset that named them is replaced: only ours
    (`chat-template.*.jinja`, the names preset.py gives them), never another file beside the preset."""
    for stale in folder.glob(TEMPLATE_GLOB):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def preset_sync() -> bool:
    """Bring the configured preset file up to date and, when it changed, tell the router; whether it changed."""
    path = preset_path()
    if path is None:
        return False
    try:
        changed = preset_write(path=path)
    except Exception:
        logger.exception("could not write the llama-server preset %s", path)
        return False
    if changed:
        logger.info("llama-server preset %s rewritten", path)
        url = router_url()
        if url:
            router_reload(url)
    return changed


def _sync_after_commit() -> None:
    preset_sync()


# Changes that alter what the preset holds: it is rewritten once their transaction commits.
SERVING_KINDS = frozenset({AuditEntry.Kind.ALIAS.value, AuditEntry.Kind.MODELFILE.value})


def preset_sync_on_change(sender: Any = None, *, kinds: frozenset[str], **kwargs: Any) -> None:
    """The audit log's `changes_recorded` receiver: a recorded change to an alias or a file syncs the preset."""
    if SERVING_KINDS.intersection(kinds):
        preset_sync_on_commit()


def preset_sync_on_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Sync once the current transaction commits (at once outside one). Called for every change; a transaction
    that changes a thousand aliases still syncs once: the callback is queued only if it is not queued already."""
    if preset_path() is None:
        return
    connection = connections[using]
    if connection.in_atomic_block and any(entry[1] is _sync_after_commit for entry in connection.run_on_commit):
        return
    transaction.on_commit(_sync_after_commit, using=using, robust=True)


# --- loading and unloading on the router (issue 10, item 3) -------------------------------------------------------

ACTION_TIMEOUT_SECONDS = 5.0
ROUTER_ACTIONS = ("load", "unload")
# Loading and unloading is an operator's job (DESIGN.md's roles: operators and admins, who may request downloads;
# editors change what is served, not what runs). Any one of these permissions suffices.
SERVE_PERMISSIONS = ("modelfiles.request_download",)


def may_serve(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and any(user.has_perm(name) for name in SERVE_PERMISSIONS)


class ServingRefused(Exception):
    """A load or unload that cannot be asked for: `status` 409 (not servable, no router) or 502/503 (router)."""

    def __init__(self, message: str, *, status: int, code: str):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def served_router_id(alias: Alias) -> str:
    """The router id the preset serves `alias` under; ServingRefused (409) when the preset leaves it out."""
    preset = preset_current()
    for served in preset.served:
        if served.alias == alias.alias:
            return served.router_id
    reason = next((item.reason for item in preset.unserved if item.alias == alias.alias), "it is not in the preset")
    raise ServingRefused(f"{alias.alias} is not served by the router: {reason}.", status=409, code="not_served")


def router_model_action(*, alias: Alias, action: str, by: AbstractBaseUser | None) -> str:
    """Ask the router to load or unload `alias` (`POST /models/load|unload`); the router id it was asked for.

    Recorded in the audit log once the router accepted it. Loading is asynchronous on the router's side: the
    model is `loading` until its process answers."""
    from config.audit.services import audit_record
    from config.serving.runtime import router_status_forget

    assert action in ROUTER_ACTIONS
    url = router_url()
    if not url:
        raise ServingRefused(
            "No llama-server router is configured (set MODELDESK_LLAMA_SERVER_URL).",
            status=409,
            code="router_not_configured",
        )
    model_id = served_router_id(alias)
    try:
        router_post(url, f"/models/{action}", {"model": model_id}, timeout=ACTION_TIMEOUT_SECONDS)
    except RouterError as exc:
        if exc.status is None:
            raise ServingRefused(
                f"llama-server at {url} is not answering ({exc.reason}).", status=503, code="router_unavailable"
            ) from exc
        raise ServingRefused(
            f"llama-server at {url} refused to {action} {model_id}: {exc.reason}",
            status=409 if 400 <= exc.status < 500 else 502,
            code="router_refused" if 400 <= exc.status < 500 else "router_error",
        ) from exc
    finally:
        router_status_forget()
    audit_record(actor=by, kind=AuditEntry.Kind.ALIAS, action=action, object_id=alias.pk, object_repr=alias.alias,
                 after={"router": url, "router_id": model_id})  # fmt: skip
    return model_id


# --- gateway usage (issue 10, item 5) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageKey:
    alias: str
    user_id: int
    day: dt.date


@dataclass
class UsageCount:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def servingusage_add(*, counts: Mapping[UsageKey, UsageCount]) -> None:
    """Add `counts` to the gateway's usage rows (one per alias, user and day), creating the rows that are new.

    F() increments: several web processes adding to one row at once all count. Each key is its own short
    transaction, so a write that fails (a user deleted meanwhile) loses only its own counts.
    """
    for key, count in counts.items():
        increments = {
            "requests": F("requests") + count.requests,
            "prompt_tokens": F("prompt_tokens") + count.prompt_tokens,
            "completion_tokens": F("completion_tokens") + count.completion_tokens,
        }
        rows = ServingUsage.objects.filter(alias=key.alias, user_id=key.user_id, day=key.day)
        if rows.update(**increments):
            continue
        try:
            with transaction.atomic():
                ServingUsage.objects.create(
                    alias=key.alias,
                    user_id=key.user_id,
                    day=key.day,
                    requests=count.requests,
                    prompt_tokens=count.prompt_tokens,
                    completion_tokens=count.completion_tokens,
                )
        except IntegrityError:
            # Another process created the row at the same moment (or the user is gone: then this counts nothing).
            rows.update(**increments)
