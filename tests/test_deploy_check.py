"""`manage.py check --deploy` with the README's production settings has nothing to warn about, and `make run`'s
defaults stay plain http. Run as separate processes: settings are read from the environment once, at start."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def readme_https_settings() -> dict[str, str]:
    """The variables of the README's "For HTTPS deployments set" block, as a reader would copy them."""
    readme = (BASE_DIR / "README.md").read_text()
    match = re.search(r"For HTTPS deployments set[^\n]*\n+```sh\n(.*?)\n```", readme, re.DOTALL)
    assert match, 'README.md lost its "For HTTPS deployments set" block'
    values = {}
    for line in match.group(1).splitlines():
        name, _, value = line.split("#", 1)[0].strip().partition("=")
        values[name] = value.strip()
    # The one value a reader makes up.
    assert values["SECRET_KEY"] == "..."
    values["SECRET_KEY"] = secrets.token_urlsafe(50)
    return values


def manage(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what the README names, plus where this test run keeps its files: nothing from the test's own settings.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MODELDESK_VAR_DIR": str(settings.VAR_DIR),
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", environment=readme_https_settings())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", result.stdout + result.stderr
    assert "WARNING" not in result.stderr.upper(), result.stderr


def test_without_the_https_settings_the_deploy_check_names_what_is_missing():
    plain = {
        name: value
        for name, value in readme_https_settings().items()
        if name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS")
    }
    result = manage("check", "--deploy", environment=plain)
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output, output


SHOW_HTTPS = (
    "from django.conf import settings as s; "
    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " s.SECURE_PROXY_SSL_HEADER)"
)


def test_make_run_defaults_stay_on_plain_http():
    # What `make run` has: a .env with SECRET_KEY only, DEBUG off.
    result = manage("shell", "--no-imports", "-c", SHOW_HTTPS, environment={"SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "False", "False", "None"]


def test_the_readme_settings_turn_every_https_protection_on():
    result = manage("shell", "--no-imports", "-c", SHOW_HTTPS, environment=readme_https_settings())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https')"
