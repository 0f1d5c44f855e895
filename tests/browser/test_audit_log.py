"""An editor makes and changes an alias; the admin finds both changes in the audit log (filters, sort), reads
the update's old → new values, and exports the filtered list as CSV."""

from __future__ import annotations

import csv
import io
import json
import re

from playwright.sync_api import Page, expect

from aliases.models import Alias
from tests.browser.helpers import (
    BROWSER_TEST,
    assert_fits_width,
    assert_inputs_labelled,
    assert_titled,
    flash,
    login,
)

pytestmark = BROWSER_TEST

NAME = "audited:instruct"


def rows(page: Page):
    return page.locator("#audit-rows tbody tr")


def test_admin_reads_an_editors_alias_changes_in_the_audit_log(page, new_context, editor, admin_user, shot):
    # Someone else's change first, so the filters have something to leave out.
    login(page, admin_user)
    page.goto("/aliases/-/new/")
    page.get_by_label("Alias*", exact=True).fill("admins:own")
    page.get_by_label("Repo*", exact=True).fill("acme/Admin-GGUF")
    page.get_by_label("Filename*", exact=True).fill("admin.Q4_K_M.gguf")
    page.get_by_role("button", name="Create alias").click()
    expect(flash(page)).to_have_text("Created alias admins:own.")

    editing = new_context().new_page()
    login(editing, editor)
    editing.goto("/aliases/-/new/")
    editing.get_by_label("Alias*", exact=True).fill(NAME)
    editing.get_by_label("Repo*", exact=True).fill("acme/Audited-GGUF")
    editing.get_by_label("Filename*", exact=True).fill("audited.Q4_K_M.gguf")
    editing.get_by_label("temperature").fill("0.7")
    editing.get_by_role("button", name="Create alias").click()
    expect(flash(editing)).to_have_text(f"Created alias {NAME}.")
    assert_titled(editing, NAME)  # the new alias's own page
    editing.get_by_role("main").get_by_role("link", name="Edit", exact=True).click()
    assert_titled(editing, f"Edit {NAME}")
    editing.get_by_label("temperature").fill("0.2")
    editing.get_by_label("n_ctx").fill("8192")
    editing.get_by_role("button", name="Save").click()
    expect(flash(editing)).to_contain_text(NAME)
    alias = Alias.objects.get(alias=NAME)
    assert alias.temperature == 0.2

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    assert_titled(page, "Audit log")
    assert_inputs_labelled(page)
    expect(rows(page)).to_have_count(3)
    shot(page, "audit-log")

    page.get_by_label("Kind").select_option("alias")
    expect(page).to_have_url(re.compile(r"[?&]kind=alias"))
    page.get_by_label("Actor").select_option(editor.username)
    expect(page).to_have_url(re.compile(rf"[?&]actor={re.escape(editor.username)}"))
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_test_id("audit-count")).to_contain_text("of 2 entries")
    expect(rows(page).first).to_contain_text("update")  # newest first
    shot(page, "filtered")

    page.locator("#audit-rows thead").get_by_role("link", name="Action").click()
    expect(page).to_have_url(re.compile(r"[?&]sort=action"))
    expect(page).to_have_url(re.compile(r"[?&]kind=alias"))  # the filters stay
    expect(rows(page).nth(0).locator("td").nth(3)).to_have_text("create")
    expect(rows(page).nth(1).locator("td").nth(3)).to_have_text("update")
    expect(page.locator("#audit-rows th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    expect(page.get_by_label("Actor")).to_have_value(editor.username)
    shot(page, "sorted-by-action")
    listed = page.url

    update = rows(page).nth(1)
    expect(update).to_contain_text("temperature")
    entry_id = update.get_attribute("data-audit")
    update.get_by_role("link", name="Details").click()
    assert_titled(page, f"Audit entry {entry_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"update: {NAME}")
    entry = page.get_by_test_id("audit-entry")
    expect(entry.locator('[data-field="actor"]')).to_have_text(editor.username)
    diff = page.get_by_test_id("audit-diff")
    temperature = diff.locator('tr[data-field="temperature"]')
    expect(temperature.locator('[data-side="before"]')).to_have_text("0.7")
    expect(temperature.locator('[data-side="after"]')).to_have_text("0.2")
    expect(temperature).to_contain_text("→")
    expect(diff.locator('tr[data-field="n_ctx"] [data-side="after"]')).to_have_text("8192")
    expect(diff.locator('tr[data-field="alias"]')).to_have_count(0)  # unchanged fields are folded away
    shot(page, "update-entry")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_fits_width(page)
    shot(page, "update-entry-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Audit log").click()
    assert page.url == listed  # back to the list as it was filtered and sorted
    with page.expect_download() as info:
        page.get_by_test_id("audit-exports").get_by_role("link", name="Export CSV").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    with open(download.path(), encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(io.StringIO(handle.read())))
    assert [(row["action"], row["actor"], row["kind"]) for row in exported] == [
        ("create", editor.username, "alias"),
        ("update", editor.username, "alias"),
    ]
    updated = exported[1]
    assert updated["object_repr"] == NAME
    assert json.loads(updated["before"])["temperature"] == 0.7
    assert json.loads(updated["after"])["temperature"] == 0.2
