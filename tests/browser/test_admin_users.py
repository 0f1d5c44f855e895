"""An admin manages people on the Users page: creates olga, changes her role, sets her password, deactivates her;
olga signs in with what the admin set and sees what her role allows. The last admin cannot demote themselves."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, assert_titled, flash, login

pytestmark = BROWSER_TEST

OLGA_FIRST = "first-olga-password-91"
OLGA_NEW = "second-olga-password-37"


def user_row(page: Page, username: str):
    return page.locator(f'#user-rows tbody tr[data-username="{username}"]')


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(flash(page)).to_have_text("You are signed out.")


def test_admin_creates_changes_and_deactivates_a_user(page, admin_user, shot):
    login(page, admin_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    assert_titled(page, "Users")
    expect(user_row(page, admin_user.username)).to_contain_text("admin")
    filters = page.get_by_role("search")
    expect(filters.get_by_label("Role", exact=True)).to_be_visible()
    expect(filters.get_by_label("Status", exact=True)).to_be_visible()
    expect(filters).not_to_contain_text("invalid name")
    shot(page, "users")

    page.get_by_role("link", name="Create user").click()
    assert_titled(page, "Create user")
    assert_inputs_labelled(page)
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Email").fill("olga@example.test")
    page.get_by_label("Role*", exact=True).select_option(label="Operator")
    page.get_by_label("Password*", exact=True).fill(OLGA_FIRST)
    page.get_by_label("Password (again)").fill(OLGA_FIRST)
    shot(page, "create-olga")
    page.get_by_role("button", name="Create user").click()
    expect(flash(page)).to_have_text("Created olga with the role operator.")
    assert_titled(page, "olga")
    expect(page.get_by_test_id("user-role")).to_have_text("operator")
    shot(page, "olga-created")

    page.get_by_role("link", name="Users", exact=True).first.click()
    expect(user_row(page, "olga")).to_contain_text("operator")
    expect(user_row(page, "olga")).to_contain_text("active")
    shot(page, "users-with-olga")

    user_row(page, "olga").get_by_role("link", name="olga").click()
    page.get_by_role("combobox", name="Role", exact=True).select_option(label="Editor")
    page.get_by_role("button", name="Change role").click()
    expect(flash(page)).to_have_text("olga is now editor.")
    expect(page.get_by_test_id("user-role")).to_have_text("editor")
    expect(page.get_by_role("combobox", name="Role", exact=True)).to_have_value("editor")
    shot(page, "olga-editor")

    page.get_by_role("link", name="Set a new password").click()
    assert_titled(page, "New password for olga")
    assert_inputs_labelled(page)
    page.get_by_label("New password*", exact=True).fill(OLGA_NEW)
    page.get_by_label("New password confirmation").fill(OLGA_NEW)
    shot(page, "set-password")
    page.get_by_role("button", name="Set password").click()
    expect(flash(page)).to_have_text("Set a new password for olga; their sessions have ended.")
    sign_out(page)

    # olga signs in: the first password no longer works, the new one does.
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill(OLGA_FIRST)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    login(page, get_user_model().objects.get(username="olga"), password=OLGA_NEW, path=None)
    expect(page.get_by_test_id("signed-in-as")).to_have_text("olga · editor")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("main").get_by_role("link", name="Create alias").first.click()
    assert_titled(page, "New alias")
    shot(page, "olga-editor-new-alias")
    sign_out(page)

    login(page, admin_user, path=None)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    user_row(page, "olga").get_by_role("link", name="olga").click()
    page.get_by_role("link", name="Deactivate…").click()
    assert_titled(page, "Deactivate olga?")
    shot(page, "deactivate-confirm")
    page.get_by_role("button", name="Deactivate").click()
    expect(flash(page)).to_have_text("Deactivated olga.")
    expect(page.get_by_role("heading", name="olga")).to_contain_text("deactivated")
    expect(page.get_by_role("button", name="Reactivate")).to_be_visible()
    shot(page, "olga-deactivated")
    sign_out(page)

    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill(OLGA_NEW)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This account is deactivated")
    expect(page.get_by_test_id("signed-in-as")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/login/"))
    shot(page, "olga-refused")


def test_the_last_admin_cannot_demote_themselves(page, admin_user, shot):
    login(page, admin_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    user_row(page, admin_user.username).get_by_role("link", name=admin_user.username).click()
    page.get_by_role("combobox", name="Role", exact=True).select_option(label="Viewer")
    page.get_by_role("button", name="Change role").click()
    expect(flash(page)).to_contain_text(
        f"{admin_user.username} is the only active admin: make another user an admin first"
    )
    expect(page.get_by_test_id("user-role")).to_have_text("admin")
    expect(page.get_by_role("combobox", name="Role", exact=True)).to_have_value("admin")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_be_visible()
    shot(page, "last-admin-refused")
