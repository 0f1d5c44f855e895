"""Five wrong passwords lock the sign-in (django-axes, default settings): the person is told why and when to try
again, and the right password is refused until then."""

from __future__ import annotations

import datetime as dt
import re

from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.browser.helpers import BROWSER_TEST, PHONE, assert_fits_width, assert_titled
from tests.factories import TEST_PASSWORD

pytestmark = BROWSER_TEST


def try_password(page: Page, username: str, password: str):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    return navigation.value


def test_five_wrong_passwords_lock_the_sign_in_and_say_until_when(page, viewer, shot):
    limit, cool_off = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME
    assert (limit, cool_off) == (5, dt.timedelta(minutes=15))  # the defaults, as a fresh install has them
    page.goto("/login/")
    for attempt in range(1, limit):
        response = try_password(page, viewer.username, f"wrong-{attempt}")
        assert response.status == 200
        expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    shot(page, "fourth-wrong-password")

    response = try_password(page, viewer.username, f"wrong-{limit}")
    assert response.status == 429
    assert_titled(page, "Sign-in locked")
    shot(page, "locked-out")

    page.get_by_role("link", name="Back to the sign-in page").click()
    assert_titled(page, "Sign in")
    response = try_password(page, viewer.username, TEST_PASSWORD)
    assert response.status == 429
    assert_titled(page, "Sign-in locked")
    locked = page.get_by_test_id("locked-out")
    expect(locked.get_by_role("heading", level=1)).to_have_text("Too many failed sign-ins")
    expect(locked.get_by_test_id("lock")).to_contain_text(
        re.compile(rf"for the username {viewer.username} and for your address\s+after 5 wrong passwords in a row")
    )
    first = AccessAttempt.objects.order_by("attempt_time").first()
    retry_at = timezone.localtime(first.attempt_time + cool_off)
    when = locked.get_by_test_id("retry-at")
    expect(when).to_contain_text(f"You can try again after {retry_at:%H:%M} {retry_at.tzname()}")
    expect(when).to_contain_text(re.compile(r"in about 1[45]\s+minutes"))
    expect(when).to_contain_text("even with the right password")
    assert int(response.headers["retry-after"]) > 14 * 60
    expect(page.get_by_test_id("signed-in-as")).to_have_count(0)
    shot(page, "right-password-still-locked")
    page.set_viewport_size(PHONE)
    assert_fits_width(page)
    shot(page, "locked-out-phone")

    # Still signed out: a page behind the sign-in sends the person back to the form.
    page.goto("/aliases/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/aliases/$"))
