"""The preset is written at worker start too: a shelf changed while no worker ran (or a preset file deleted by
hand) is brought back in step without waiting for the next change. Found by Celery's autodiscover_tasks."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from config.serving.services import preset_sync

logger = logging.getLogger(__name__)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    try:
        preset_sync()
    except Exception:  # a worker must start even when the database is not up yet
        logger.exception("could not write the llama-server preset at worker start")
