from __future__ import annotations

import os

from celery import Celery
from celery.signals import celeryd_after_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modeldesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_after_setup.connect
def _consume_host_queues(sender=None, instance=None, **kwargs) -> None:
    """Besides the shared queue (and any -Q given), a worker takes its host's queue (pulls aimed at MODELDESK_HOST)
    and its cache location's queue (work that must run where the files are: verifying, the periodic scan)."""
    from modelfiles import location

    queues = instance.app.amqp.queues
    for name in (location.host_queue(location.current_host()), location.location_queue(location.cache_location().key)):
        queues.select_add(name)
