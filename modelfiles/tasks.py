from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down

from modelfiles import location, notices, services

logger = logging.getLogger(__name__)


def _stopping_marker(hostname: str) -> Path:
    """A file that says this worker was asked to stop. The signal reaches the worker's main process while the
    downloads run in its pool's processes: they look for the file before taking the next queued download."""
    from django.conf import settings

    return Path(settings.VAR_DIR) / "workers" / f"{re.sub(r'[^A-Za-z0-9@._-]', '_', hostname)}.stopping"


@shared_task(name="modelfiles.download", acks_late=True, ignore_result=True)
def download_task(download_id: str, hops: int = 0) -> None:
    from celery import current_task

    hostname = current_task.request.hostname or ""
    marker = _stopping_marker(hostname) if hostname else None
    services.download_run_next(
        download_id=download_id,
        worker=hostname,
        hops=hops,
        stopping=marker.exists if marker is not None else None,
    )


@shared_task(
    name="modelfiles.webhook",
    ignore_result=True,
    autoretry_for=(notices.WebhookError,),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=6,
)
def webhook_task(event: dict) -> None:
    """POST a finished download's event (services.download_event) to MODELDESK_WEBHOOK_URL; a receiver that
    is down or answers an error gets it again, with backoff, for a few minutes."""
    from django.conf import settings

    if settings.MODELDESK_WEBHOOK_URL:
        notices.post_event(settings.MODELDESK_WEBHOOK_URL, event, timeout=settings.MODELDESK_WEBHOOK_TIMEOUT_SECONDS)


@shared_task(name="modelfiles.requeue_stale", ignore_result=True)
def requeue_stale_task() -> int:
    return services.download_requeue_stale()


@shared_task(name="modelfiles.reconcile", ignore_result=True)
def reconcile_task() -> int:
    return services.download_reconcile()


@shared_task(name="modelfiles.scan_cache", ignore_result=True)
def scan_cache_task(fan_out: bool = True) -> dict[str, int]:
    """The periodic scan. Each worker can scan only its own cache, so the run the beat sends (to the shared queue)
    also sends one scan to every other known location's queue, taken by a worker that reads that cache."""
    if fan_out:
        services.modelfile_sync_elsewhere()
    return services.modelfile_sync()


@shared_task(name="modelfiles.verify", acks_late=True, ignore_result=True)
def verify_task(verification_id: int) -> None:
    services.verification_run(verification_id=verification_id)


@shared_task(name="modelfiles.check_updates", ignore_result=True)
def check_updates_task() -> int:
    return sum(result.update_available for result in services.modelfile_check_updates())


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    # A worker starting under a name cannot still be running downloads it claimed before: resume them now
    # instead of waiting for their heartbeat to go stale. Queued downloads whose task never reached the broker
    # (it was down when they were asked for) are sent now, so a worker coming back after an outage needs no
    # beat to pick them up. Then bring the file list in step with the cache.
    hostname = getattr(sender, "hostname", None)
    try:
        if hostname:
            _stopping_marker(hostname).unlink(missing_ok=True)  # left by this name's last stop
        # Files per host: this worker's host is listed on its cache's location, so pulls can be aimed at it.
        services.location_register_worker(host=location.current_host())
        if hostname:
            services.download_requeue_stale(worker=hostname)
        services.download_reconcile()
        services.modelfile_sync()
    except Exception:
        logger.exception("start-up housekeeping failed")
    finally:
        from django.db import connections

        connections.close_all()


@worker_shutting_down.connect
def _on_worker_shutting_down(sender=None, **kwargs) -> None:
    # SIGTERM or SIGINT: Celery's warm shutdown would wait for every running download to finish (hours for a big
    # file, long after any process manager's SIGKILL). Hand them back instead; their transfers stop at the next
    # progress report and the tasks return, so the worker exits within seconds and loses no byte fetched.
    # This runs in the signal handler of the main process: the database work goes to a thread of its own, with
    # its own connection, so whatever the main thread was doing is left alone.
    hostname = sender if isinstance(sender, str) else getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        marker = _stopping_marker(hostname)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        logger.exception("could not note the stop for the pool's processes")
    thread = threading.Thread(target=_hand_back, args=(hostname,), name="modeldesk-hand-back")
    thread.start()
    thread.join(timeout=10)


def _hand_back(hostname: str) -> None:
    from django.db import connections

    try:
        handed = services.download_hand_back(worker=hostname)
        if handed:
            logger.warning("stopping: handed %s download(s) back to the queue", handed)
    except Exception:
        logger.exception("could not hand the downloads back on shutdown")
    finally:
        connections.close_all()
