from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError


def uvicorn_command(python: str, addr: str) -> list[str]:
    """uvicorn serving the whole site (WhiteNoise serves the static files inside it, as under gunicorn)."""
    host, colon, port = addr.rpartition(":")
    if not colon or not port.isdigit():
        raise CommandError(f"--addr {addr!r}: give HOST:PORT, e.g. 127.0.0.1:8000")
    return [
        python, "-m", "uvicorn", "config.asgi:application", "--host", host.strip("[]"), "--port", port,
        # Django does not speak ASGI's lifespan protocol; the client address and scheme are Django's to decide
        # (CLIENT_IP_PROXY_COUNT, BEHIND_TLS_PROXY), not rewritten by uvicorn from X-Forwarded-* headers.
        "--lifespan", "off", "--no-proxy-headers",
        # Ctrl-C must not wait for open streams to end on their own.
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip


class Command(BaseCommand):
    help = (
        "Start the web server (uvicorn serving config.asgi, so the /v1/ gateway streams) and a Celery worker with "
        "its beat scheduler together (what `make run` uses). Ctrl-C stops all of them. For production run uvicorn "
        "(or gunicorn) and `celery -A config worker` separately."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port for the web server.")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--no-worker", action="store_true", help="Start only the web server.")

    def handle(self, *args, addr: str, concurrency: int, no_worker: bool, **options):
        python = sys.executable
        commands = [uvicorn_command(python, addr)]
        if not no_worker:
            commands.append(
                [
                    python, "-m", "celery", "-A", "config", "worker", "--beat",
                    f"--concurrency={concurrency}", "--loglevel=INFO",
                ]
            )  # fmt: skip
        children = [subprocess.Popen(command) for command in commands]
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(self.style.SUCCESS(f"ModelDesk is running at http://{addr}/  (Ctrl-C stops it)"))
        try:
            while not stopping:
                if any(child.poll() is not None for child in children):
                    self.stderr.write("A process exited; stopping the others.")
                    break
                time.sleep(0.5)
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        codes = [child.returncode for child in children]
        if not stopping and any(codes):
            raise SystemExit(1)
