"""The alias list's ergonomics in a real browser: a column picker remembered across reloads and browsers, row
actions that come back to the same list page, and names that wrap at their separators only."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from aliases.models import Alias
from tests.browser.helpers import BROWSER_TEST, PHONE, flash, login

pytestmark = BROWSER_TEST

LONG_NAME = "teamwide-experimental-llama3:instruct_q4_k_m.release-candidate.v2"
LONG_REPO = "someorganisation/Meta-Llama-3.1-70B-Instruct-GGUF"
LONG_FILE = "quantised/Meta-Llama-3.1-70B-Instruct.Q4_K_M-00001-of-00002.gguf"
SEPARATORS = "/-_.:"

# Where each line of an element's text ends: the characters after which the rendered text moves to a new line.
LINE_ENDS = """(element) => {
    const ends = [];
    let previous = null;
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const rect = range.getBoundingClientRect();
            if (previous && rect.top > previous.top + previous.height / 2) ends.push(previous.char);
            previous = {top: rect.top, height: rect.height, char: node.data[i]};
        }
    }
    return ends;
}"""


def column_headers(page: Page):
    return page.locator("#alias-rows thead th")


def row(page: Page, name: str):
    return page.locator(f'#alias-rows tr[data-alias="{name}"]')


def pick_columns(page: Page, *, hide: list[str]) -> None:
    page.get_by_test_id("column-picker").locator("summary").click()
    for label in hide:
        page.get_by_label(label, exact=True).uncheck()
    page.get_by_test_id("column-picker").get_by_role("button", name="Apply", exact=True).click()


def test_hidden_columns_stay_hidden_after_a_reload_and_in_another_browser(new_context, editor, alias_factory):
    alias_factory(alias="alpha", repo="acme/Alpha-GGUF", filename="alpha.Q4_K_M.gguf")
    alias_factory.create_batch(12)
    page = new_context().new_page()
    login(page, editor)
    page.goto("/aliases/?q=alpha")
    expect(column_headers(page).filter(has_text="Filename")).to_have_count(1)
    expect(column_headers(page).filter(has_text="Snapshot")).to_have_count(0)  # hidden by default

    pick_columns(page, hide=["Filename", "Chat template"])
    expect(column_headers(page).filter(has_text="Filename")).to_have_count(0)  # the table swapped in place
    expect(column_headers(page).filter(has_text="Chat template")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/aliases/\?q=alpha$"))  # same list page, same search
    expect(page.get_by_label("Search")).to_have_value("alpha")
    expect(row(page, "alpha")).to_be_visible()
    assert "alpha.Q4_K_M" not in row(page, "alpha").inner_html()  # not rendered, not merely hidden

    page.reload()
    expect(column_headers(page).filter(has_text="Repo")).to_have_count(1)
    expect(column_headers(page).filter(has_text="Filename")).to_have_count(0)

    # The same person signing in from another browser: the server remembers, not this browser's storage.
    elsewhere = new_context().new_page()
    login(elsewhere, editor)
    elsewhere.goto("/aliases/")
    expect(column_headers(elsewhere).filter(has_text="Repo")).to_have_count(1)
    expect(column_headers(elsewhere).filter(has_text="Filename")).to_have_count(0)
    expect(elsewhere.get_by_test_id("column-picker").locator("summary")).to_contain_text("4 hidden")


def test_the_picker_is_a_plain_form_too(page, viewer, alias_factory):
    # form.submit() skips the submit event, so htmx stays out of it: the POST a browser without JavaScript sends.
    # (A context with JavaScript disabled cannot be used: the fixtures' teardown evaluates a promise in each page.)
    alias_factory(alias="alpha")
    login(page, viewer)
    page.goto("/aliases/?q=alp")
    page.get_by_test_id("column-picker").locator("summary").click()
    page.get_by_label("Repo", exact=True).uncheck()
    with page.expect_navigation():
        page.get_by_test_id("column-picker").locator("form").evaluate("(form) => form.submit()")
    expect(page).to_have_url(re.compile(r"/aliases/\?q=alp$"))
    expect(column_headers(page).filter(has_text="Filename")).to_have_count(1)
    expect(column_headers(page).filter(has_text="Repo")).to_have_count(0)


def test_duplicate_row_action_lands_on_the_new_alias(page, editor, alias_factory):
    alias_factory(alias="original", repo="acme/Original-GGUF", filename="original.Q4_K_M.gguf", n_ctx=4096)
    alias_factory.create_batch(12)
    login(page, editor)
    page.goto("/aliases/?q=orig")
    row(page, "original").get_by_role("link", name="Duplicate original").click()
    expect(page.get_by_label("Alias*", exact=True)).to_have_value("original-copy")
    page.get_by_role("button", name="Create alias").click()
    expect(flash(page)).to_have_text("Created alias original-copy.")
    expect(page.get_by_role("heading", name="original-copy")).to_be_visible()
    assert Alias.objects.get(alias="original-copy").n_ctx == 4096
    # The page's way back is the list page the duplicate started from.
    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Aliases").click()
    expect(page).to_have_url(re.compile(r"/aliases/\?q=orig$"))
    expect(row(page, "original-copy")).to_be_visible()


def test_delete_row_action_confirms_and_returns_to_the_list_page(page, editor, alias_factory):
    alias_factory(alias="doomed")
    alias_factory(alias="doomed-not")
    login(page, editor)
    page.goto("/aliases/?q=doomed&sort=-alias")
    row(page, "doomed").get_by_role("link", name="Delete doomed", exact=True).click()
    expect(page.get_by_role("heading", name="Delete alias doomed?")).to_be_visible()
    assert Alias.objects.filter(alias="doomed").exists()  # nothing deleted before the confirmation
    page.get_by_role("button", name="Delete doomed").click()
    expect(flash(page)).to_have_text("Deleted alias doomed.")
    expect(page).to_have_url(re.compile(r"/aliases/\?q=doomed&sort=-alias$"))
    expect(row(page, "doomed")).to_have_count(0)
    expect(row(page, "doomed-not")).to_be_visible()
    assert not Alias.objects.filter(alias="doomed").exists()


def test_read_only_rows_offer_only_duplicate(page, editor, alias_factory):
    alias_factory(alias="acme/Tiny-GGUF:Q4_K_M", source=Alias.Source.MODEL, repo="acme/Tiny-GGUF")
    login(page, editor)
    page.goto("/aliases/")
    actions = row(page, "acme/Tiny-GGUF:Q4_K_M").locator("[data-row-action]")
    expect(actions).to_have_count(1)
    expect(actions).to_have_text("Duplicate")


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, PHONE], ids=["1366px", "390px"])
def test_long_names_break_only_at_separators(new_context, viewer, alias_factory, viewport, shot):
    alias_factory(alias=LONG_NAME, repo=LONG_REPO, filename=LONG_FILE)
    page = new_context(viewport=viewport).new_page()
    login(page, viewer)
    page.goto("/aliases/")
    cells = {name: row(page, LONG_NAME).locator("td.name-cell").nth(index) for index, name in
             enumerate(("alias", "repo", "filename"))}  # fmt: skip
    expect(cells["alias"]).to_contain_text(LONG_NAME)
    shot(page, f"long-names-{viewport['width']}")
    line_ends = {}
    for name, cell in cells.items():
        assert cell.evaluate("(el) => getComputedStyle(el).wordBreak") == "normal"
        assert cell.evaluate("(el) => getComputedStyle(el).overflowWrap") == "normal"
        line_ends[name] = cell.evaluate(LINE_ENDS)
        assert all(char in SEPARATORS for char in line_ends[name]), f"{name} broke mid-word: {line_ends[name]}"
    if viewport is PHONE:
        # Narrow enough that the names must wrap: the check above saw real line breaks.
        assert all(line_ends.values()), line_ends
    # The text a user copies is the name itself: <wbr> adds no character.
    assert cells["alias"].inner_text().strip() == LONG_NAME
