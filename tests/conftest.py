from __future__ import annotations

import os

import pytest
from django.test import Client

from config.accounts.roles import ADMIN, EDITOR, OPERATOR, VIEWER
from tests.factories import AliasFactory, UserFactory


@pytest.fixture
def make_user(db):
    def make(role: str = VIEWER, username: str | None = None):
        kwargs = {"role": role}
        if username:
            kwargs["username"] = username
        return UserFactory(**kwargs)

    return make


@pytest.fixture
def viewer(make_user):
    return make_user(VIEWER, "vera-viewer")


@pytest.fixture
def operator(make_user):
    return make_user(OPERATOR, "otto-operator")


@pytest.fixture
def editor(make_user):
    return make_user(EDITOR, "edith-editor")


@pytest.fixture
def admin_user(make_user):
    return make_user(ADMIN, "ada-admin")


@pytest.fixture
def client_for(db):
    """A logged-in test client for a user: `client_for(editor)`."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def viewer_client(client_for, viewer) -> Client:
    return client_for(viewer)


@pytest.fixture
def operator_client(client_for, operator) -> Client:
    return client_for(operator)


@pytest.fixture
def editor_client(client_for, editor) -> Client:
    return client_for(editor)


@pytest.fixture
def alias_factory(db):
    return AliasFactory


@pytest.fixture(scope="session", autouse=True)
def empty_task_queue():
    """Start from an empty task queue: messages left by an earlier run would only delay the workers here."""
    from config.celery import app

    app.control.purge()


@pytest.fixture(autouse=True)
def unreachable_hub(monkeypatch):
    """No test asks the real Hub: a pull's pre-flight finds nothing listening (and queues, noting it), unless
    the test points HF_ENDPOINT at the test Hub (tests/hub/server.py)."""
    # A module-wide test Hub set up before this function fixture (the browser journeys') is kept: it is local.
    if not os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1:"):
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher is slow on purpose; tests log users in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: users, sessions and rows kept for an earlier test's database (whose
    ids a later one may reuse) must not be taken for this one's."""
    from django.core.cache import caches

    caches["default"].clear()
