"""Worker heartbeats: a Celery worker writes its row every few seconds from a thread of its main process.

The row says which host's cache it reads, its pid, the queues it takes and how many downloads it is transferring,
so the dashboard can list workers and `/readyz` can tell whether any is alive. A clean stop removes the row; a
killed worker's row stays and turns silent once `last_seen` is older than a few heartbeats.
"""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

_stop = threading.Event()
_thread: threading.Thread | None = None


def heartbeat_write(*, name: str, queues: list[str], started_at) -> None:
    """Write (or create) this worker's row now."""
    from config.health.models import WorkerHeartbeat
    from modelfiles import location
    from modelfiles.models import Download

    running = Download.objects.filter(worker=name, status__in=Download.RUNNING).count()
    WorkerHeartbeat.objects.update_or_create(
        name=name[:255],
        defaults={
            "host": location.current_host()[:255],
            "pid": os.getpid(),
            "queues": sorted(queues),
            "running": running,
            "started_at": started_at,
            "last_seen": timezone.now(),
        },
    )


def heartbeat_remove(*, name: str) -> None:
    from config.health.models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(name=name[:255], pid=os.getpid()).delete()


def _beat(name: str, queues: list[str]) -> None:
    started_at = timezone.now()
    failing = False
    while True:
        try:
            heartbeat_write(name=name, queues=queues, started_at=started_at)
        except Exception:  # the database may be away for a while; the next beat tries again
            # Said once per outage, not every few seconds.
            if not failing:
                logger.warning("worker heartbeat not written (trying again every few seconds)", exc_info=True)
            failing = True
        else:
            if failing:
                logger.info("worker heartbeat written again")
            failing = False
        finally:
            connections.close_all()  # this thread's connections only
        if _stop.wait(settings.MODELDESK_WORKER_HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def _start(sender=None, **kwargs) -> None:
    global _thread
    name = getattr(sender, "hostname", None)
    if not name or _thread is not None:
        return
    queues = list(sender.app.amqp.queues.consume_from or ())
    _stop.clear()
    _thread = threading.Thread(target=_beat, args=(name, queues), name="modeldesk-heartbeat", daemon=True)
    _thread.start()


@worker_shutdown.connect
def _end(sender=None, **kwargs) -> None:
    global _thread
    if _thread is None:
        return
    _stop.set()
    _thread.join(timeout=5)
    _thread = None
    name = getattr(sender, "hostname", None)
    if not name:
        return
    try:
        heartbeat_remove(name=name)
    except Exception:
        logger.warning("worker heartbeat not removed", exc_info=True)
    finally:
        connections.close_all()
