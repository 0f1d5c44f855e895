from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "config.health"
    label = "health"
    verbose_name = "Health"

    def ready(self) -> None:
        # The worker side: heartbeats start when a Celery worker is ready (nothing happens in the web process).
        from config.health import heartbeat  # noqa: F401
