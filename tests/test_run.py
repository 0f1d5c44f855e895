"""What `make run` does, end to end: migrate, ensure an admin, start web + worker, sign in, stop on Ctrl-C."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def fresh_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEBUG")}
    env.update(
        {
            "MODELDESK_VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "test-run-secret-key-0123456789abcdef0123456789",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "CELERY_BROKER_URL" not in env:
        env.pop("CELERY_BROKER_URL", None)
    return env


def wait_for_http(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "runall exited before serving"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def test_run_serves_the_login_page_the_printed_password_works_and_ctrl_c_stops_everything(fresh_env, tmp_path):
    manage("migrate", "--noinput", env=fresh_env)
    output = manage("ensure_admin", env=fresh_env)
    username, password = re.search(r"username (\S+)\s+password (\S+)", output).groups()

    log_path = tmp_path / "runall.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed once the process ends)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runall", "--addr", f"127.0.0.1:{port}", "--concurrency", "1"],
        cwd=BASE_DIR,
        env=fresh_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready means the database, the broker, the cache folder and the worker's heartbeat (/readyz); runall
        # then prints its block, which a newcomer reads before anything else.
        wait_for_http(f"{base}/readyz", process)
        deadline = time.monotonic() + 10
        while "ModelDesk is ready at" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{base}/login/").read().decode()
        assert "Sign in" in page
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": csrf}
        ).encode()
        request = urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"})
        landed = opener.open(request)
        assert urllib.parse.urlsplit(landed.url).path == "/"  # the dashboard
        assert username in landed.read().decode()
        # The stylesheet comes from an installed package through WhiteNoise, not from a CDN.
        assert opener.open(f"{base}/static/bootstrap/css/bootstrap.min.css").status == 200
    finally:
        # Ctrl-C in a terminal reaches the whole process group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            log.close()
    output = log_path.read_text()
    assert process.returncode == 0, output
    # One block, printed once /readyz said ready (worker heartbeat included), with the address and the sign-in.
    block = output[output.index("ModelDesk is ready at") :]
    assert f"http://127.0.0.1:{port}/" in block.splitlines()[0]
    assert f"Sign in as {username} with the password {password}" in block
    assert f"python manage.py changepassword {username}" in block
    assert output.count("ModelDesk is ready at") == 1
    # Nothing a newcomer cannot act on.
    assert "No hostname was supplied" not in output
    assert "Traceback" not in output
    # No child outlived the launcher (it started its own session, so its children share its session id).
    # Pool processes may take a moment to notice their parent is gone; none may linger.
    deadline = time.monotonic() + 15
    while True:
        left = subprocess.run(["ps", "-o", "pid=,cmd=", "--sid", str(process.pid)], capture_output=True, text=True)
        if not left.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left.stdout.strip() == ""


def test_the_sign_in_block_forgets_the_password_once_it_is_changed(fresh_env):
    manage("migrate", "--noinput", env=fresh_env)
    output = manage("ensure_admin", env=fresh_env)
    username = re.search(r"username (\S+)", output).group(1)
    kept = Path(fresh_env["MODELDESK_VAR_DIR"]) / "initial-admin-password.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    code = (
        "from django.contrib.auth import get_user_model; "
        f"u = get_user_model().objects.get(username={username!r}); u.set_password('another-pass-123'); u.save(); "
        "from config.accounts.initial_admin import initial_admin_read; print(initial_admin_read())"
    )
    assert manage("shell", "-v", "0", "-c", code, env=fresh_env).strip() == "None"
    assert not kept.exists()
