"""The configured broker and database are the real ones, and a real worker process reaches both."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from tests.workers import celery_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_broker_accepts_connections():
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        assert conn.connected


def test_a_real_worker_answers_on_the_configured_broker():
    with celery_worker() as worker:
        replies = app.control.ping(destination=[worker.hostname], timeout=2.0)
    assert replies == [{worker.hostname: {"ok": "pong"}}]


def test_the_suite_uses_the_configured_database_engine():
    expected = "postgresql" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "sqlite"
    assert connection.vendor == expected
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
