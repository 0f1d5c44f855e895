"""Bulk actions on the alias list in Chromium: select across a search and apply a preset to every match; delete
a few through the confirmation page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from aliases.models import Alias
from aliases.presets.services import preset_create
from aliases.services import alias_create, alias_update
from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, flash, login

pytestmark = BROWSER_TEST

MATCHING = 25  # three pages of 10


def make(name: str, by) -> Alias:
    return alias_create(data={"alias": name, "repo": f"acme/{name}-GGUF", "filename": f"{name}.Q4_K_M.gguf"}, by=by)


def column(page: Page, header: str):
    """The cells of the alias table's column with this header (found by its heading, wherever it is)."""
    index = page.locator("#alias-rows thead th").evaluate_all(
        "(cells, header) => cells.findIndex((cell) => cell.textContent.trim().startsWith(header))", header
    )
    assert index >= 0, f"no column {header!r}"
    return page.locator(f"#alias-rows tbody tr td:nth-child({index + 1})")


def test_editor_selects_all_matching_across_pages_and_applies_a_preset(page: Page, editor, shot):
    for number in range(MATCHING):
        make(f"team-{number:02d}", editor)
    for number in range(3):
        make(f"solo-{number:02d}", editor)
    preset_create(data={"name": "cool", "temperature": 0.2, "top_p": 0.9}, by=editor)
    login(page, editor)
    page.goto("/aliases/?per_page=10")

    # The search swaps the table (and its action bar) in place; the boxes work in the new one.
    page.get_by_label("Search").fill("team")
    expect(page).to_have_url(re.compile(r"[?&]q=team"))
    expect(page.get_by_test_id("alias-count")).to_contain_text(f"of {MATCHING} aliases")
    across = page.get_by_label(f"Select all {MATCHING} matching aliases, on every page")
    expect(across).to_be_hidden()  # offered once the whole page is ticked
    page.get_by_label("Select all on this page").check()
    expect(page.locator("#alias-rows [data-bulk-row]:checked")).to_have_count(10)
    expect(page.get_by_test_id("bulk-bar")).to_contain_text("10 selected")
    across.check()
    expect(page.get_by_test_id("bulk-bar")).to_contain_text(f"All {MATCHING} matching selected")
    assert_inputs_labelled(page)

    page.get_by_label("Preset to apply").select_option("cool")
    page.get_by_role("button", name="Apply preset").click()

    expect(flash(page).first).to_contain_text(f"Applied preset cool to {MATCHING} aliases")
    # Back on the list as it was: the same search and page size, the new values in the table.
    expect(page).to_have_url(re.compile(r"/aliases/\?(?=.*q=team)(?=.*per_page=10)"))
    expect(page.locator("#alias-rows tbody tr")).to_have_count(10)
    expect(column(page, "Temperature")).to_have_text(["0.2"] * 10)
    assert Alias.objects.filter(alias__startswith="team-", temperature=0.2, top_p=0.9, version=2).count() == MATCHING
    assert not Alias.objects.filter(alias__startswith="solo-", temperature__isnull=False).exists()

    # The last page was never shown, yet its rows changed too.
    page.locator("#alias-table .pagination").get_by_role("link", name="3", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]page=3"))
    expect(column(page, "Temperature")).to_have_text(["0.2"] * (MATCHING - 20))
    expect(flash(page).first).to_contain_text(f"Applied preset cool to {MATCHING} aliases")
    shot(page, "bulk-result")


def test_editor_deletes_ticked_aliases_through_the_confirmation_page(page: Page, editor, shot):
    for name in ("keep-me", "drop-a", "drop-b"):
        make(name, editor)
    login(page, editor)
    page.goto("/aliases/?sort=alias")

    page.get_by_label("Select drop-a").check()
    page.get_by_label("Select drop-b").check()
    expect(page.get_by_test_id("bulk-bar")).to_contain_text("2 selected")
    page.get_by_role("button", name="Delete selected…").click()

    expect(page.get_by_role("heading", name="Delete 2 aliases?")).to_be_visible()
    listed = page.get_by_test_id("bulk-delete-list")
    expect(listed).to_contain_text("drop-a")
    expect(listed).to_contain_text("drop-b")
    expect(listed).not_to_contain_text("keep-me")
    assert Alias.objects.count() == 3  # nothing deleted before the confirmation
    shot(page, "bulk-delete-confirm")
    page.get_by_role("button", name="Delete 2 aliases").click()

    expect(flash(page).first).to_contain_text("Deleted 2 aliases: drop-a, drop-b")
    expect(page).to_have_url(re.compile(r"/aliases/\?sort=alias$"))
    expect(page.locator("#alias-rows tbody tr")).to_have_count(1)
    assert list(Alias.objects.values_list("alias", flat=True)) == ["keep-me"]


def test_a_row_someone_saves_meanwhile_is_skipped_and_keeps_their_edit(page: Page, editor, make_user):
    for name in ("one", "two", "three"):
        make(name, editor)
    login(page, editor)
    page.goto("/aliases/")
    page.get_by_label("Select all on this page").check()
    # Another editor saves "two" after the list was shown.
    other = make_user("editor", "olga-other")
    alias_update(alias=Alias.objects.get(alias="two"), data={"temperature": 1.5}, expected_version=1, by=other)

    page.get_by_label("Parameter").select_option("temperature")
    page.get_by_label("Value").fill("0.5")
    page.get_by_role("button", name="Set", exact=True).click()

    expect(flash(page).filter(has_text="Set temperature to 0.5 on 2 aliases")).to_contain_text("one, three")
    expect(flash(page).filter(has_text="Skipped")).to_contain_text("two (changed by olga-other")
    assert Alias.objects.get(alias="two").temperature == 1.5
    assert list(Alias.objects.filter(temperature=0.5).order_by("alias").values_list("alias", flat=True)) == [
        "one",
        "three",
    ]
