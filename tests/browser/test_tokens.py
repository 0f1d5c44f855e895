"""A viewer makes an API token for a script: the raw token is shown once, works against the API, is never shown
again, and stops working as soon as it is revoked."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect

from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, assert_titled, flash, login

pytestmark = BROWSER_TEST

LABEL = "nightly-report"


def api_status(base_url: str, token: str) -> int:
    """What a script using the token gets from the API (urllib: no browser, no cookies)."""
    request = urllib.request.Request(f"{base_url}/api/models", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def token_row(page: Page):
    return page.locator("#token-rows tbody tr", has_text=LABEL)


def test_a_token_is_shown_once_works_and_stops_working_when_revoked(page, viewer, live_server, shot):
    login(page, viewer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My API tokens").click()
    assert_titled(page, "My API tokens")
    assert_inputs_labelled(page)
    expect(page.locator("#token-rows")).to_contain_text("No tokens yet.")
    shot(page, "no-tokens")

    page.get_by_label("Label").fill(LABEL)
    page.get_by_label("Expires").select_option(label="In 30 days")
    page.get_by_role("button", name="Create token").click()
    created = page.get_by_test_id("new-token")
    expect(created).to_contain_text(f"Token created: {LABEL}")
    expect(created).to_contain_text("Copy it now: it is not shown again.")
    expect(created).to_contain_text(re.compile(r"It expires \d{4}-\d\d-\d\d \d\d:\d\d"))
    raw = page.get_by_label("Your new API token").input_value()
    assert len(raw) >= 32, raw
    shot(page, "token-created")

    assert api_status(live_server.url, raw) == 200

    # A reload resends the form (the page was a POST's answer): no second token, and the raw one is gone.
    page.reload()
    expect(flash(page)).to_contain_text("That form was already sent")
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert raw not in page.content()
    row = token_row(page)
    expect(row).to_have_count(1)
    prefix = row.get_attribute("data-token-prefix")
    assert prefix and raw.startswith(prefix)
    expect(row).to_contain_text(f"{prefix}…")
    expires = row.locator("td").nth(4).locator("time")
    expect(expires).to_contain_text(re.compile(r"^4\sweeks,\s[12]\sdays?\sfrom\snow$"))
    expect(expires).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    shot(page, "token-listed")

    row.get_by_role("link", name="Revoke").click()
    assert_titled(page, "Revoke token")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{prefix}…")
    expect(page.get_by_role("main")).to_contain_text(LABEL)
    shot(page, "revoke-confirm")
    assert api_status(live_server.url, raw) == 200  # asking is not revoking

    page.get_by_role("button", name="Revoke token").click()
    expect(flash(page)).to_have_text(f"Revoked token {prefix}… ({LABEL}).")
    assert_titled(page, "My API tokens")
    shot(page, "token-revoked")

    assert api_status(live_server.url, raw) == 401
