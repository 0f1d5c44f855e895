from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per running Celery worker, rewritten every few seconds by the worker itself (config/health/heartbeat.py).

    A worker that stops cleanly removes its row; one that was killed leaves it, and its `last_seen` says since when
    it has been silent."""

    name = models.CharField(max_length=255, unique=True, help_text="Celery's node name, e.g. celery@host.")
    host = models.CharField(max_length=255, help_text="The host whose cache the worker reads (MODELDESK_HOST).")
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    running = models.PositiveIntegerField(default=0, help_text="Downloads it is transferring now.")
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
