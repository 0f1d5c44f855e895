"""The failed-token count is shared by every web process: two real gunicorn servers on the same database,
guesses alternating between them, and the limit still holds after LIMIT failures in total."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from config.accounts.models import BearerFailureWindow
from config.accounts.services import apitoken_create
from tests import workers

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def web_server() -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": workers.test_database_url(),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DEBUG": "0",
        "API_TOKEN_FAILURE_LIMIT": str(LIMIT),
        "API_TOKEN_FAILURE_WINDOW_SECONDS": "300",
    }
    log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{Path(log.name).read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not listen within 30 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def status_of(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/api/models", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_two_web_processes_share_one_failure_count(viewer):
    valid = apitoken_create(user=viewer)
    with web_server() as first, web_server() as second:
        assert status_of(first, valid) == 200 and status_of(second, valid) == 200
        servers = [first, second]
        statuses = [status_of(servers[i % 2], "mdk_" + secrets.token_urlsafe(32)) for i in range(LIMIT)]
        assert statuses == [401] * LIMIT
        # Each process saw only half of the failures, yet both refuse now: the count is the database's.
        assert status_of(first, valid) == 429
        assert status_of(second, valid) == 429
    assert BearerFailureWindow.objects.get().failures == LIMIT
