from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Start the web server and a Celery worker with its beat scheduler together (what `make run` uses). "
        "Ctrl-C stops all of them. For production run gunicorn and `celery -A config worker` separately."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port for the web server.")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--no-worker", action="store_true", help="Start only the web server.")

    def handle(self, *args, addr: str, concurrency: int, no_worker: bool, **options):
        python = sys.executable
        manage = os.path.join(os.getcwd(), "manage.py")
        commands = [[python, manage, "runserver", "--noreload", addr]]
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
