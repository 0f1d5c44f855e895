"""What the browser journeys share: marks, signing in, and checks every page should pass."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.factories import TEST_PASSWORD

# The live server and a worker process must see what the test writes, so each test commits for real; the
# database is emptied afterwards and refilled with what migrations made (the role groups).
BROWSER_TEST = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def login(page: Page, user, *, password: str = TEST_PASSWORD, path: str = "/login/") -> None:
    """Sign in through the form, as a person does, and wait until the page after it has loaded."""
    if path is not None:
        page.goto(path)
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(user.get_username())


def flash(page: Page):
    """The flash messages shown at the top of the page."""
    return page.locator(".messages .alert")


def assert_titled(page: Page, title: str) -> None:
    """Every page says what it is in the tab: "<title> · ModelDesk"."""
    expect(page).to_have_title(re.compile(rf"^{re.escape(title)} · ModelDesk$"))


def assert_inputs_labelled(page: Page) -> None:
    """Every visible form control has a name a screen reader can read out (a label, aria-label or -labelledby)."""
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll("input, select, textarea"))
            .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                             && !el.getAttribute("aria-labelledby"))
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert unlabelled == [], f"inputs without a label: {unlabelled}"


def assert_fits_width(page: Page) -> None:
    """Nothing makes the whole page scroll sideways (wide tables scroll inside their own box)."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"


def is_console_error(message: ConsoleMessage) -> bool:
    """A console error that is the page's fault (htmx logs its syntax errors and failed requests there).

    Chromium asks every site for /favicon.ico; ModelDesk has none, and that 404 is not a fault of the page."""
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")
