"""Start a real Celery worker process against the configured broker and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def test_database_url() -> str:
    """A DATABASE_URL for the database the tests are using now (its test name, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"


@contextmanager
def celery_worker(
    *, extra_env: dict[str, str] | None = None, concurrency: int = 1, hostname: str | None = None, beat: bool = False
) -> Iterator[subprocess.Popen]:
    """Run `celery -A config worker` until the block ends; wait until it answers a ping first."""
    from config.celery import app

    hostname = hostname or f"test-{os.getpid()}-{time.monotonic_ns()}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False)  # noqa: SIM115
    beat_args = ["--beat", f"--schedule={Path(tempfile.mkdtemp(prefix='celerybeat-')) / 'schedule'}"] if beat else []
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            f"--hostname={hostname}", f"--concurrency={concurrency}", "--pool=prefork",
            "--loglevel=INFO", "--without-gossip", "--without-mingle",
            *beat_args,
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Celery worker exited early:\n{Path(log.name).read_text()[-4000:]}")
            if app.control.ping(destination=[hostname], timeout=1.0):
                break
        else:
            raise RuntimeError(f"Celery worker did not answer within 60 s:\n{Path(log.name).read_text()[-4000:]}")
        process.log_path = log.name  # type: ignore[attr-defined]
        process.hostname = hostname  # type: ignore[attr-defined]
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
