from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from config.health.models import WorkerHeartbeat

# A worker is silent once this many heartbeats in a row are missing.
SILENT_AFTER_BEATS = 3


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    host: str
    pid: int
    queues: list[str]
    running: int
    started_at: datetime
    last_seen: datetime
    silent: bool


def silent_after() -> timedelta:
    return timedelta(seconds=SILENT_AFTER_BEATS * settings.MODELDESK_WORKER_HEARTBEAT_SECONDS)


def workers_seen(*, now: datetime | None = None) -> list[WorkerSeen]:
    """Every worker on record, live ones first; silent ones kept a day so a dead worker stays visible."""
    now = now or timezone.now()
    limit = now - silent_after()
    rows = WorkerHeartbeat.objects.filter(last_seen__gte=now - timedelta(days=1))
    seen = [
        WorkerSeen(
            name=row.name, host=row.host, pid=row.pid, queues=list(row.queues or []), running=row.running,
            started_at=row.started_at, last_seen=row.last_seen, silent=row.last_seen < limit,
        )
        for row in rows
    ]  # fmt: skip
    return sorted(seen, key=lambda worker: (worker.silent, worker.name))
