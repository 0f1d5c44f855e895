"""Signing in and out, a wrong password, and an expired session that brings the person back where they were."""

from __future__ import annotations

import re
from importlib import import_module
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, assert_titled, flash, login

pytestmark = BROWSER_TEST


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_sign_in_wrong_password_then_sign_out(page, viewer, shot):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    assert_titled(page, "Sign in")
    assert_inputs_labelled(page)
    shot(page, "sign-in-form")

    page.get_by_label("Username").fill(viewer.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_label("Password").press("Enter")  # Enter submits
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    expect(page.get_by_label("Username")).to_have_value(viewer.username)  # kept: only the password is retyped
    expect(page.get_by_label("Password")).to_have_value("")
    shot(page, "wrong-password")

    login(page, viewer, path=None)
    expect(page).to_have_url(re.compile(r"/$"))
    assert_titled(page, "Dashboard")
    expect(flash(page)).to_have_text(f"Signed in as {viewer.username}.")
    expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    shot(page, "signed-in-dashboard")
    page.keyboard.press("Escape")  # closes the flash message
    expect(flash(page)).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(flash(page)).to_have_text("You are signed out.")
    shot(page, "signed-out")
    page.goto("/aliases/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/aliases/$"))


def test_an_expired_session_returns_to_the_page_after_signing_in(page, viewer, alias_factory, shot):
    for number in range(12):
        alias_factory(alias=f"model-{number:03d}")
    login(page, viewer)
    where = "/aliases/?q=model&sort=-alias&per_page=10"
    page.goto(where)
    expect(page.get_by_test_id("alias-count")).to_contain_text("Showing 1–10 of 12")

    # The session ends on the server (timeout, sessions cleared), in the session engine's every store: with a
    # shared cache (CACHE_URL) sessions are read from it before the database.
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for key in Session.objects.values_list("session_key", flat=True):
        store(session_key=key).delete()
    assert not Session.objects.exists()
    page.reload()
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    expect(page.get_by_text("Sign in to continue to the page you asked for.")).to_be_visible()
    shot(page, "session-expired-sign-in")
    login(page, viewer, path=None)
    assert path_of(page.url) == where
    expect(page.get_by_label("Search")).to_have_value("model")
    expect(page.locator("#alias-rows tbody tr").first).to_have_attribute("data-alias", "model-011")
    shot(page, "back-where-they-were")

    # The same while typing a search: htmx gets no login form swapped into the table; the whole page goes to
    # the sign-in form and then back to the list it was showing.
    page.context.clear_cookies()
    page.get_by_label("Search").fill("model-00")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    expect(page.locator("#alias-table")).to_have_count(0)
    login(page, viewer, path=None)
    assert path_of(page.url) == where
