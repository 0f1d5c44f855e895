"""A sign-in always starts a new session key (issue 7): a key the browser had before signing in, whoever set it,
never becomes a signed-in session."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse

from config.accounts.roles import role_of
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def client_with_key(key: str) -> Client:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    return client


def sign_in(client: Client, username: str):
    return client.post(reverse("login"), {"username": username, "password": TEST_PASSWORD})


def is_signed_in(client: Client) -> bool:
    return client.get(reverse("aliases:list")).status_code == 200


def test_an_anonymous_session_gets_a_new_key_on_sign_in(viewer):
    planted = SessionStore()
    planted["seen_banner"] = True
    planted.create()
    client = client_with_key(planted.session_key)
    assert sign_in(client, viewer.username).status_code == 302
    assert session_key(client) != planted.session_key
    assert is_signed_in(client)
    assert not SessionStore().exists(planted.session_key)
    assert not is_signed_in(client_with_key(planted.session_key))


def test_signing_in_again_gives_a_new_key_and_the_old_one_stops_working(viewer):
    client = Client()
    sign_in(client, viewer.username)
    old_key = session_key(client)
    assert is_signed_in(client_with_key(old_key))
    response = sign_in(client, viewer.username)
    assert response.status_code == 302
    new_key = session_key(client)
    assert new_key != old_key
    assert is_signed_in(client)
    assert not is_signed_in(client_with_key(old_key))


def test_signing_in_as_someone_else_over_a_signed_in_session_switches_user_and_key(viewer, editor):
    client = Client()
    sign_in(client, viewer.username)
    old_key = session_key(client)
    response = sign_in(client, editor.username)
    assert response.status_code == 302
    assert session_key(client) != old_key
    session = SessionStore(session_key=session_key(client))
    assert session[SESSION_KEY] == str(editor.pk)
    assert role_of(editor) == "editor"
    assert not is_signed_in(client_with_key(old_key))


def test_a_signed_in_visitor_opening_the_login_page_is_sent_on(viewer):
    client = Client()
    sign_in(client, viewer.username)
    response = client.get(reverse("login"))
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
