from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.accounts.initial_admin import initial_admin_path, initial_admin_read

# How long `make run` waits for /readyz before it shows the address anyway, naming what is not ready.
READY_TIMEOUT_SECONDS = 120


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
        # A line per request buried the console under the live pages' polls (one a second per open page);
        # refusals and errors are still logged by Django.
        "--no-access-log",
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
        try:
            down = self.wait_until_ready(addr, children, lambda: stopping, need_worker=not no_worker)
            if not stopping and all(child.poll() is None for child in children):
                self.stdout.write(self.sign_in_block(addr, down))
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

    def wait_until_ready(self, addr: str, children, stopping, *, need_worker: bool) -> list[str]:
        """Poll /readyz until it says ready (without a worker: all but the workers' line); the lines still down
        when the time is up, or [] once ready."""
        host, _, port = addr.rpartition(":")
        host = host.strip("[]")
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        down = ["web server: not answering yet"]
        while time.monotonic() < deadline and not stopping():
            if any(child.poll() is not None for child in children):
                return down
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    checks = json.load(response)["checks"]
            except urllib.error.HTTPError as error:  # 503: some part is not ready yet
                try:
                    checks = json.load(error)["checks"]
                except ValueError:
                    checks = []
            except (OSError, ValueError):
                checks = None
            if checks is not None:
                down = [
                    f"{check['component']}: {check['detail']}"
                    for check in checks
                    if check["status"] != "ok" and (need_worker or check["component"] != "workers")
                ]
                if not down:
                    return []
            time.sleep(0.5)
        return down

    def sign_in_block(self, addr: str, down: list[str]) -> str:
        rule = "=" * 72
        lines = ["", rule]
        if down:
            lines.append(f"  ModelDesk answers at http://{addr}/ but is not ready:")
            lines.extend(f"    - {line}" for line in down)
        else:
            lines.append(f"  ModelDesk is ready at http://{addr}/")
        first = initial_admin_read()
        if first is not None:
            username, password = first
            lines.append(f"  Sign in as {username} with the password {password}")
            lines.append(f"    (shown here until you change it; kept in {initial_admin_path()})")
        else:
            admin = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
            username = admin.get_username() if admin else "admin"
            lines.append(f"  Sign in as {username} with your password")
        lines.append(f"  Forgot it? python manage.py changepassword {username}")
        lines.append("  Ctrl-C stops the web server and the worker.")
        lines.append(rule)
        text = "\n".join(lines) + "\n"
        return self.style.SUCCESS(text) if not down else self.style.WARNING(text)
