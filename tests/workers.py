"""Start a real Celery worker process against the configured broker and the test database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A `redis-server` of the test's own on a free port, without persistence, that can be stopped and started
    again on the same port (a broker outage); stopped by its pid, never by name."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="test-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@contextmanager
def use_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker until the block ends (it read CELERY_BROKER_URL at
    import). Its connection and producer pools are keyed by the broker, so fresh ones are made and the old ones
    put back afterwards."""
    from config.celery import app

    saved = (
        app.conf.broker_url,
        app.conf.broker_transport,
        app.conf.broker_transport_options,
        app._pool,
        app.amqp._producer_pool,
    )
    # Celery reads CELERY_BROKER_URL from the environment before its own setting (CI sets it for Redis), so
    # both must point at the test's broker, or publishes would still go to the configured one.
    saved_env = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url
    app.conf.broker_transport = None  # the embedded default names its own transport class; the URL decides here
    # The same bounded timeouts as settings give a worker on Redis (config/settings.py).
    timeout = settings.BROKER_TIMEOUT_SECONDS
    app.conf.broker_transport_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        (
            app.conf.broker_url,
            app.conf.broker_transport,
            app.conf.broker_transport_options,
            app._pool,
            app.amqp._producer_pool,
        ) = saved
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env


@contextmanager
def celery_worker(
    *,
    extra_env: dict[str, str] | None = None,
    concurrency: int = 1,
    hostname: str | None = None,
    beat: bool = False,
    broker_url: str | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `celery -A config worker` until the block ends; wait until it answers a ping first.

    `broker_url`: another broker than the configured one (this process's app must use it too: `use_broker`)."""
    from config.celery import app

    hostname = hostname or f"test-{os.getpid()}-{time.monotonic_ns()}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL,
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
        stop_session(process, timeout=20)
        log.close()


def stop_session(process: subprocess.Popen, *, timeout: float) -> None:
    """Stop a process started with start_new_session=True, and everything it started, by its own pid."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_download(download_id, predicate, seconds: float = 60.0, every: float = 0.1):
    """The Download row once `predicate(row)` holds, polled as a page would; fails naming the last state seen."""
    from modelfiles.models import Download

    deadline = time.monotonic() + seconds
    row = None
    while time.monotonic() < deadline:
        row = Download.objects.get(pk=download_id)
        if predicate(row):
            return row
        time.sleep(every)
    raise AssertionError(f"download never reached the state asked for; last: {row.status} {row.error_message}")


def set_hub_env(patch, env: dict[str, str]) -> None:
    """Point this process (and the workers it starts) at the test's cache and Hub with a MonkeyPatch: `env` set,
    and the developer's own cache folder and token kept out."""
    for name, value in env.items():
        patch.setenv(name, value)
    patch.delenv("HF_HUB_CACHE", raising=False)
    patch.delenv("HF_TOKEN", raising=False)
