"""Bearer tokens (issue 7): failures are rate limited per client address (429 with Retry-After, before the token
is looked up), tokens can expire, and their last use is kept."""

from __future__ import annotations

import datetime as dt
import io
import secrets

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.accounts.models import ApiToken, BearerFailureWindow
from config.accounts.services import apitoken_create
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db

LIMIT = 5
API_URL = "/api/models"


@pytest.fixture(autouse=True)
def throttle_settings(settings):
    settings.API_TOKEN_FAILURE_LIMIT = LIMIT
    settings.API_TOKEN_FAILURE_WINDOW_SECONDS = 300
    settings.CLIENT_IP_PROXY_COUNT = 0


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def random_token() -> str:
    return "mdk_" + secrets.token_urlsafe(32)


def test_random_tokens_get_401_until_the_limit_then_429_with_retry_after(viewer):
    client = Client()
    for _ in range(LIMIT):
        assert_error(client.get(API_URL, **bearer(random_token())), 401, "authentication_error")
    response = client.get(API_URL, **bearer(random_token()))
    error = assert_error(response, 429, "invalid_request_error", code="too_many_token_failures")
    assert "Too many invalid API tokens" in error["message"]
    assert 290 <= int(response["Retry-After"]) <= 300


def test_a_throttled_address_is_refused_before_its_token_is_looked_up(viewer, django_assert_max_num_queries):
    valid = apitoken_create(user=viewer)
    client = Client()
    for _ in range(LIMIT):
        client.get(API_URL, **bearer(random_token()))
    # One query: the failure count. No token lookup, even for a token that would work.
    with django_assert_max_num_queries(1):
        response = client.get(API_URL, **bearer(valid))
    assert response.status_code == 429
    # Other addresses are not affected.
    assert Client(REMOTE_ADDR="203.0.113.9").get(API_URL, **bearer(valid)).status_code == 200


def test_the_count_is_kept_in_the_database_for_every_web_process(viewer):
    client = Client()
    for _ in range(3):
        client.get(API_URL, **bearer(random_token()))
    row = BearerFailureWindow.objects.get(address="127.0.0.1")
    assert row.failures == 3


def test_once_the_window_has_passed_the_address_may_try_again(viewer):
    valid = apitoken_create(user=viewer)
    client = Client()
    for _ in range(LIMIT):
        client.get(API_URL, **bearer(random_token()))
    assert client.get(API_URL, **bearer(valid)).status_code == 429
    BearerFailureWindow.objects.update(window_started_at=timezone.now() - dt.timedelta(seconds=301))
    assert client.get(API_URL, **bearer(valid)).status_code == 200
    client.get(API_URL, **bearer(random_token()))
    assert BearerFailureWindow.objects.get().failures == 1


def test_successful_tokens_are_not_counted(viewer):
    valid = apitoken_create(user=viewer)
    client = Client()
    for _ in range(LIMIT * 2):
        assert client.get(API_URL, **bearer(valid)).status_code == 200
    assert not BearerFailureWindow.objects.exists()


def test_malformed_authorization_headers_count_as_failures(viewer):
    client = Client()
    for _ in range(LIMIT):
        assert client.get(API_URL, HTTP_AUTHORIZATION="Bearer two parts").status_code == 401
    assert client.get(API_URL, **bearer(random_token())).status_code == 429


def test_behind_a_proxy_each_forwarded_address_has_its_own_count(settings, viewer):
    settings.CLIENT_IP_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(LIMIT):
        client.get(API_URL, HTTP_X_FORWARDED_FOR="198.51.100.7", **bearer(random_token()))
    valid = apitoken_create(user=viewer)
    assert client.get(API_URL, HTTP_X_FORWARDED_FOR="198.51.100.7", **bearer(valid)).status_code == 429
    assert client.get(API_URL, HTTP_X_FORWARDED_FOR="198.51.100.8", **bearer(valid)).status_code == 200


def test_an_expired_token_is_refused_with_a_message_saying_so(viewer):
    raw = apitoken_create(user=viewer, expires_at=timezone.now() + dt.timedelta(days=1))
    assert Client().get(API_URL, **bearer(raw)).status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    error = assert_error(Client().get(API_URL, **bearer(raw)), 401, "authentication_error")
    assert "expired" in error["message"]


def test_last_used_is_recorded(viewer):
    raw = apitoken_create(user=viewer)
    assert ApiToken.objects.get().last_used_at is None
    before = timezone.now()
    Client().get(API_URL, **bearer(raw))
    assert ApiToken.objects.get().last_used_at >= before


def test_apitoken_command_makes_an_expiring_token(viewer):
    out = io.StringIO()
    call_command("apitoken", viewer.username, "--name", "ci", "--expires-days", "30", stdout=out)
    token = ApiToken.objects.get(user=viewer)
    expected = timezone.now() + dt.timedelta(days=30)
    assert abs((token.expires_at - expected).total_seconds()) < 60
    listing = io.StringIO()
    call_command("apitoken", viewer.username, "--list", stdout=listing)
    assert f"expires {token.expires_at.isoformat()}" in listing.getvalue()


def test_a_session_request_is_not_throttled_by_token_failures(viewer_client):
    anonymous = Client()
    for _ in range(LIMIT + 1):
        anonymous.get(API_URL, **bearer(random_token()))
    # Same address, signed in with the browser session and no bearer header: not a token guess.
    assert viewer_client.get(API_URL).status_code == 200
    assert viewer_client.get(reverse("home")).status_code == 200


def test_rows_of_windows_that_have_passed_are_dropped(viewer):
    Client(REMOTE_ADDR="198.51.100.1").get(API_URL, **bearer(random_token()))
    BearerFailureWindow.objects.update(window_started_at=timezone.now() - dt.timedelta(seconds=301))
    Client(REMOTE_ADDR="198.51.100.2").get(API_URL, **bearer(random_token()))
    assert list(BearerFailureWindow.objects.values_list("address", flat=True)) == ["198.51.100.2"]
