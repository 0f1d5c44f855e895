"""Sign-in throttling (issue 7): after AXES_FAILURE_LIMIT wrong passwords the username and the address are
locked for the cool-off, on the login page and the Django admin alike, and the page says until when."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    settings.CLIENT_IP_PROXY_COUNT = 0


def sign_in(client: Client, username: str, password: str, *, url: str | None = None, **extra):
    return client.post(url or reverse("login"), {"username": username, "password": password}, **extra)


def lock_sentence(response) -> str:
    """The sentence saying what is locked, with tags and runs of whitespace taken out."""
    html = response.content.decode()
    sentence = html[html.index('data-testid="lock">') :].split("</p>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", "", sentence.split(">", 1)[1]).split())


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_the_right_password_is_refused_after_too_many_wrong_ones(client, viewer):
    for attempt in range(1, LIMIT):
        response = sign_in(client, viewer.username, f"wrong-{attempt}")
        assert response.status_code == 200, attempt
        assert b"Please enter a correct username and password" in response.content
    locked = sign_in(client, viewer.username, "wrong-last")
    assert locked.status_code == 429
    response = sign_in(client, viewer.username, TEST_PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)
    assert client.get(reverse("aliases:list")).status_code == 302


def test_the_lockout_page_says_what_happened_and_when_to_try_again_in_the_site_layout(client, viewer):
    for attempt in range(LIMIT):
        response = sign_in(client, viewer.username, f"wrong-{attempt}")
    assert response.status_code == 429
    page = response.content.decode()
    names = [template.name for template in response.templates]
    assert "registration/locked_out.html" in names and "base.html" in names
    assert 'class="navbar-brand' in page
    assert "Too many failed sign-ins" in page
    assert f"for the username {viewer.username} and for your address after {LIMIT} wrong passwords" in (
        lock_sentence(response)
    )
    retry_at = timezone.localtime(AccessAttempt.objects.get().attempt_time + dt.timedelta(minutes=15))
    assert retry_at.strftime("%H:%M") in page
    assert 14 * 60 <= int(response["Retry-After"]) <= 15 * 60


def test_one_username_is_locked_whatever_address_the_guesses_come_from(viewer):
    for attempt in range(LIMIT):
        sign_in(Client(REMOTE_ADDR=f"198.51.100.{attempt + 1}"), viewer.username, "wrong")
    fresh = Client(REMOTE_ADDR="203.0.113.9")
    response = sign_in(fresh, viewer.username, TEST_PASSWORD)
    assert response.status_code == 429
    assert not signed_in(fresh)
    lock = lock_sentence(response)
    assert f"for the username {viewer.username} after" in lock


def test_one_address_is_locked_whatever_usernames_it_tries(client, viewer, editor):
    for attempt in range(LIMIT):
        sign_in(client, f"nobody-{attempt}", "wrong")
    response = sign_in(client, editor.username, TEST_PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)
    assert "locked from your address after" in lock_sentence(response)
    assert editor.username not in lock_sentence(response)
    # Another address is not affected.
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert sign_in(elsewhere, viewer.username, TEST_PASSWORD).status_code == 302
    assert signed_in(elsewhere)


def test_the_django_admin_login_is_locked_too(client, admin_user):
    admin_login = reverse("admin:login")
    for attempt in range(LIMIT - 1):
        response = sign_in(client, admin_user.username, f"wrong-{attempt}", url=admin_login)
        assert response.status_code == 200
    assert sign_in(client, admin_user.username, "wrong", url=admin_login).status_code == 429
    response = sign_in(client, admin_user.username, TEST_PASSWORD, url=admin_login)
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert not signed_in(client)
    # The same lock holds on the site's own login page.
    assert sign_in(client, admin_user.username, TEST_PASSWORD).status_code == 429


def test_after_the_cool_off_the_right_password_works_again(client, viewer):
    for attempt in range(LIMIT):
        sign_in(client, viewer.username, f"wrong-{attempt}")
    assert sign_in(client, viewer.username, TEST_PASSWORD).status_code == 429
    # Time passes: the failures are now older than the cool-off.
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=16))
    response = sign_in(client, viewer.username, TEST_PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_tries_during_the_lockout_do_not_extend_it(client, viewer):
    for attempt in range(LIMIT):
        sign_in(client, viewer.username, f"wrong-{attempt}")
    first_end = AccessAttempt.objects.get().attempt_time
    for _ in range(3):
        assert sign_in(client, viewer.username, "still-wrong").status_code == 429
    assert AccessAttempt.objects.get().attempt_time == first_end


def test_a_forged_forwarded_for_header_does_not_escape_the_address_lock_by_default(client, viewer):
    for attempt in range(LIMIT):
        sign_in(client, f"nobody-{attempt}", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}")
    response = sign_in(client, viewer.username, TEST_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_behind_a_proxy_the_forwarded_address_is_the_one_counted(settings, viewer):
    settings.CLIENT_IP_PROXY_COUNT = 1
    proxy = "10.0.0.1"
    for attempt in range(LIMIT):
        sign_in(Client(REMOTE_ADDR=proxy), f"nobody-{attempt}", "wrong", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    # Another client behind the same proxy signs in; the guesser's address stays locked, whatever it prepends.
    other = Client(REMOTE_ADDR=proxy)
    assert sign_in(other, viewer.username, TEST_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 302
    guesser = Client(REMOTE_ADDR=proxy)
    forged = "203.0.113.5, 198.51.100.7"
    assert sign_in(guesser, viewer.username, TEST_PASSWORD, HTTP_X_FORWARDED_FOR=forged).status_code == 429


def test_the_time_shown_is_when_enough_old_failures_have_aged_out(viewer):
    for attempt in range(LIMIT):
        sign_in(Client(REMOTE_ADDR=f"198.51.100.{attempt + 1}"), viewer.username, "wrong")
    # The guesses were spread over ten minutes; the lock lifts when the oldest is 15 minutes old.
    now = timezone.now()
    for minutes_ago, attempt in zip((10, 8, 6, 4, 2), AccessAttempt.objects.order_by("pk"), strict=True):
        attempt.attempt_time = now - dt.timedelta(minutes=minutes_ago)
        attempt.save()
    response = sign_in(Client(REMOTE_ADDR="203.0.113.9"), viewer.username, TEST_PASSWORD)
    assert response.status_code == 429
    expected = timezone.localtime(now + dt.timedelta(minutes=5))
    assert expected.strftime("%H:%M") in response.content.decode()
    assert 4 * 60 <= int(response["Retry-After"]) <= 5 * 60
