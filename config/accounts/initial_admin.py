"""The first admin's generated password, kept where `make run` can show it again once everything answers.

Written (owner-only) when `ensure_admin` creates the account, read by `runall` for its sign-in block, and removed
as soon as it no longer signs in (the admin changed it), so it never outlives its use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

FILENAME = "initial-admin-password.json"


def initial_admin_path() -> Path:
    return Path(settings.VAR_DIR) / FILENAME


def initial_admin_save(*, username: str, password: str) -> Path:
    path = initial_admin_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"username": username, "password": password}, handle)
    return path


def initial_admin_read() -> tuple[str, str] | None:
    """(username, password) while that password still signs in; None (and the file removed) once it does not."""
    path = initial_admin_path()
    try:
        saved = json.loads(path.read_text())
        username, password = saved["username"], saved["password"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not user.check_password(password):
        path.unlink(missing_ok=True)
        return None
    return username, password
