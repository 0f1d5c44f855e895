"""The My API tokens page: every role creates (shown once), lists and revokes its own tokens."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.accounts.models import ApiToken, hash_token
from config.accounts.roles import ROLES
from config.accounts.services import apitoken_issue
from config.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

TOKENS_URL = reverse("accounts:tokens")
RAW_RE = re.compile(r'value="(mdk_[A-Za-z0-9_-]+)"')


def assert_no_inline_code(html: str) -> None:
    assert " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_the_page_and_the_nav_link(make_user, client_for, role):
    client = client_for(make_user(role))
    response = client.get(TOKENS_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "My API tokens" in page
    assert f'href="{TOKENS_URL}"' in client.get(reverse("home")).content.decode()
    assert_no_inline_code(page)


def test_signed_out_visitors_go_to_the_login_page(client):
    response = client.get(TOKENS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.post(TOKENS_URL, {"name": "x"}).status_code == 302
    assert not ApiToken.objects.exists()


def test_creating_a_token_shows_it_once_and_it_works(viewer, viewer_client):
    response = viewer_client.post(TOKENS_URL, {"name": "laptop", "expires_in": "30"})
    assert response.status_code == 200
    assert "no-store" in {part.strip() for part in response["Cache-Control"].split(",")}
    raw = RAW_RE.search(response.content.decode()).group(1)
    token = ApiToken.objects.get(user=viewer)
    assert token.key_hash == hash_token(raw) and token.name == "laptop"
    assert abs((token.expires_at - (timezone.now() + dt.timedelta(days=30))).total_seconds()) < 60
    assert "not shown again" in response.content.decode()
    # Never again: not on the next visit of the page.
    again = viewer_client.get(TOKENS_URL).content.decode()
    assert raw not in again
    assert token.prefix in again and "laptop" in again
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_resending_the_form_by_reloading_issues_no_second_token(viewer, viewer_client):
    once = re.search(r'name="once" value="([^"]+)"', viewer_client.get(TOKENS_URL).content.decode()).group(1)
    first = viewer_client.post(TOKENS_URL, {"name": "laptop", "once": once})
    raw = RAW_RE.search(first.content.decode()).group(1)

    resent = viewer_client.post(TOKENS_URL, {"name": "laptop", "once": once}, follow=True)

    assert ApiToken.objects.filter(user=viewer).count() == 1
    page = resent.content.decode()
    assert resent.redirect_chain == [(TOKENS_URL, 302)]
    assert "That form was already sent" in page and raw not in page
    # The page after a creation carries a new form: a second token on purpose is one click away.
    next_once = re.search(r'name="once" value="([^"]+)"', first.content.decode()).group(1)
    assert next_once != once
    assert viewer_client.post(TOKENS_URL, {"name": "ci", "once": next_once}).status_code == 200
    assert ApiToken.objects.filter(user=viewer).count() == 2


def test_creating_is_recorded_in_the_audit_log_without_the_token(viewer, viewer_client):
    response = viewer_client.post(TOKENS_URL, {"name": "ci", "expires_in": ""})
    raw = RAW_RE.search(response.content.decode()).group(1)
    entry = AuditEntry.objects.get(kind="token", action="create")
    assert entry.actor == viewer
    assert entry.after["label"] == "ci" and entry.after["expires_at"] is None
    assert raw not in str(entry.before) + str(entry.after) + entry.object_repr
    assert ApiToken.objects.get().expires_at is None


def test_a_bad_label_is_refused_and_nothing_is_created(viewer_client):
    response = viewer_client.post(TOKENS_URL, {"name": "line\nbreak", "expires_in": "7"})
    assert response.status_code == 400
    assert b"Control characters" in response.content
    assert viewer_client.post(TOKENS_URL, {"name": "x", "expires_in": "12"}).status_code == 400
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_ones_own_tokens(viewer, editor, viewer_client):
    apitoken_issue(user=viewer, name="mine")
    theirs, _ = apitoken_issue(user=editor, name="theirs")
    page = viewer_client.get(TOKENS_URL).content.decode()
    assert "mine" in page
    assert "theirs" not in page and theirs.prefix not in page


def test_revoking_asks_first_then_revokes_and_records_it(viewer, viewer_client):
    token, raw = apitoken_issue(user=viewer, name="old")
    url = reverse("accounts:token-revoke", args=[token.pk])
    confirm = viewer_client.get(url)
    assert confirm.status_code == 200
    assert b"Revoke token" in confirm.content
    assert ApiToken.objects.filter(pk=token.pk).exists()
    response = viewer_client.post(url)
    assert response.status_code == 302 and response["Location"] == TOKENS_URL
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert "Revoked token" in viewer_client.get(TOKENS_URL).content.decode()
    entry = AuditEntry.objects.get(kind="token", action="revoke")
    assert entry.before["label"] == "old" and entry.actor == viewer
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_someone_elses_token_cannot_be_revoked(editor, viewer_client):
    token, _ = apitoken_issue(user=editor)
    url = reverse("accounts:token-revoke", args=[token.pk])
    assert viewer_client.get(url).status_code == 404
    assert viewer_client.post(url).status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_expired_tokens_are_marked(viewer, viewer_client):
    apitoken_issue(user=viewer, name="short", expires_at=timezone.now() + dt.timedelta(days=1))
    ApiToken.objects.update(expires_at=timezone.now() - dt.timedelta(hours=1))
    assert "expired" in viewer_client.get(TOKENS_URL).content.decode()
