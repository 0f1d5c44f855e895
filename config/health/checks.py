"""What `/readyz` asks: the database, the broker, the cache folder and the workers, each briefly and on its own.

Details say what failed in words an operator can act on, never a URL, a password or a path.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"component": self.component, "status": "ok" if self.ok else "down", "detail": self.detail}


class Down(Exception):
    """A probe's own verdict, said as is (other exceptions are named by type)."""


def _timed(component: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail = probe()
    except Down as down:
        return Check(component, False, str(down))
    except Exception as exc:  # each probe's failure is reported, never raised
        return Check(component, False, f"{type(exc).__name__}: {_short(exc)}")
    return Check(component, True, f"{detail} ({(time.perf_counter() - started) * 1000:.0f} ms)")


def _short(exc: Exception) -> str:
    # A file error names the path: say only what went wrong with it.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    # Driver messages can carry the server's address; keep the first line and no more than a sentence of it.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    return text[:160]


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} answered"


def _broker() -> str:
    from config.celery import app

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        # The on-disk broker is its folder: a message can be written there or it cannot.
        # A dotted ".part" name, which the reader skips (config/broker.py).
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-", suffix=".part"):
            pass
        return "on-disk broker folder writable"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.BROKER_TIMEOUT_SECONDS)
        conn.default_channel  # noqa: B018 (opening the channel is the broker's round trip)
        return f"{conn.transport.driver_type} broker answered"


def _cache_folder() -> str:
    from modelfiles.cache import hub_dir

    folder = hub_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-"):
        pass
    return "model cache folder writable"


def _workers() -> str:
    from config.health.selectors import workers_seen

    workers = workers_seen()
    live = [worker for worker in workers if not worker.silent]
    silent = len(workers) - len(live)
    if not live:
        raise Down(
            "no live Celery worker (none has sent a heartbeat lately); start one with `celery -A config worker`"
            + (f"; {silent} silent" if silent else "")
        )
    return f"{len(live)} live" + (f", {silent} silent" if silent else "")


PROBES: dict[str, Callable[[], str]] = {
    "database": _database,
    "broker": _broker,
    "cache": _cache_folder,
    "workers": _workers,
}


def readiness() -> list[Check]:
    return [_timed(component, probe) for component, probe in PROBES.items()]
