"""GET/POST /api/tokens and DELETE /api/tokens/<id>: one's own tokens, in the API's error envelope."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from config.accounts.models import ApiToken, hash_token
from config.accounts.services import apitoken_issue
from config.audit.models import AuditEntry
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/tokens"


def test_listing_shows_only_ones_own_tokens_in_the_list_envelope(viewer, editor, viewer_client):
    mine, _ = apitoken_issue(user=viewer, name="mine")
    apitoken_issue(user=editor, name="theirs")
    body = viewer_client.get(URL).json()
    assert body["total"] == 1 and body["page"] == 1
    [row] = body["data"]
    assert row["id"] == mine.pk and row["name"] == "mine" and row["prefix"] == mine.prefix
    assert "token" not in row and "key_hash" not in row
    assert set(row) == {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}


def test_creating_returns_the_token_once(viewer, viewer_client):
    expires = (timezone.now() + dt.timedelta(days=7)).isoformat()
    response = viewer_client.post(URL, {"name": "ci", "expires_at": expires}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert "no-store" in {part.strip() for part in response["Cache-Control"].split(",")}
    body = response.json()
    token = ApiToken.objects.get(pk=body["id"])
    assert token.key_hash == hash_token(body["token"]) and token.user == viewer and token.expires_at is not None
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {body['token']}").status_code == 200
    assert body["token"] not in viewer_client.get(URL).content.decode()
    assert AuditEntry.objects.filter(kind="token", action="create", actor=viewer).count() == 1


def test_a_token_cannot_create_tokens(viewer):
    _, raw = apitoken_issue(user=viewer)
    response = Client().post(URL, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_error(response, 403, "forbidden_error", code="session_required")
    assert ApiToken.objects.count() == 1
    # Listing and revoking work with a token.
    assert Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_bad_bodies_are_400_naming_the_field(viewer_client):
    past = (timezone.now() - dt.timedelta(days=1)).isoformat()
    cases = [
        ({"expires_at": past}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"name": "x" * 65}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": 5}, "name"),
        ({"label": "x"}, "label"),
    ]
    for body, field in cases:
        response = viewer_client.post(URL, body, content_type="application/json")
        assert_error(response, 400, "invalid_request_error", param=field)
    assert not ApiToken.objects.exists()


def test_revoking_ones_own_token(viewer, viewer_client):
    token, raw = apitoken_issue(user=viewer)
    assert viewer_client.delete(f"{URL}/{token.pk}").status_code == 204
    assert not ApiToken.objects.exists()
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert AuditEntry.objects.filter(kind="token", action="revoke", actor=viewer).count() == 1
    assert_error(viewer_client.delete(f"{URL}/{token.pk}"), 404, "not_found_error", code="token_not_found")


def test_someone_elses_token_is_404(editor, viewer_client):
    token, _ = apitoken_issue(user=editor)
    assert_error(viewer_client.delete(f"{URL}/{token.pk}"), 404, "not_found_error")
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_ids_too_large_for_the_database_are_404_not_500(viewer_client, client_for, admin_user):
    huge = "9" * 30
    assert viewer_client.delete(f"{URL}/{huge}").status_code == 404
    assert viewer_client.get(f"/account/tokens/{huge}/revoke/").status_code == 404
    assert client_for(admin_user).get(f"/users/{huge}/").status_code == 404


def test_anonymous_callers_get_401(client):
    assert_error(client.get(URL), 401, "authentication_error")
    assert_error(client.post(URL, {}, content_type="application/json"), 401, "authentication_error")


def test_the_schema_documents_the_token_endpoints(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/tokens"])
    assert "delete" in schema["paths"]["/api/tokens/{token_id}"]
    assert "429" in schema["paths"]["/api/tokens"]["get"]["responses"]
