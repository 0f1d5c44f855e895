"""An editor's day with aliases: a form with mistakes, fixed and saved; finding, sorting, paging; edit,
duplicate, delete; a draft that survives a reload; and two editors on the same alias."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from aliases.models import Alias
from aliases.services import alias_create
from tests.browser.helpers import (
    BROWSER_TEST,
    PHONE,
    assert_fits_width,
    assert_inputs_labelled,
    assert_titled,
    flash,
    login,
)

pytestmark = BROWSER_TEST

NAME = "journey:instruct"
COPY = f"{NAME}-copy"
# Required fields carry an asterisk in their label.
ALIAS_LABEL = "Alias*"


def rows(page: Page):
    return page.locator("#alias-rows tbody tr")


def field_error(page: Page, field: str):
    """The message shown under a field (crispy's Bootstrap 5 markup)."""
    return page.locator(f"#div_id_{field} .invalid-feedback")


def test_editor_creates_finds_sorts_edits_duplicates_and_deletes(page, editor, alias_factory, shot):
    alias_factory.create_batch(12)
    login(page, editor)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Aliases").click()
    assert_titled(page, "Aliases")
    expect(page.get_by_role("link", name="Aliases", exact=True)).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="Create alias").click()
    assert_titled(page, "New alias")
    assert_inputs_labelled(page)

    # A first try with two mistakes: temperature out of range and five stop words.
    page.get_by_label(ALIAS_LABEL, exact=True).fill(NAME)
    page.get_by_label("Repo*", exact=True).fill("acme/Journey-GGUF")
    page.get_by_label("Filename*", exact=True).fill("journey.Q4_K_M.gguf")
    page.get_by_label("temperature").fill("3")
    page.get_by_label("stop").fill("<|eot_id|>\n</s>\nUser:\n###\n<|end|>")
    shot(page, "form-with-mistakes")
    page.get_by_label(ALIAS_LABEL, exact=True).press("Enter")  # Enter submits

    expect(page.get_by_test_id("form-errors")).to_be_visible()
    expect(field_error(page, "temperature")).to_contain_text("Must be between 0 and 2 (got 3)")
    expect(field_error(page, "stop")).to_contain_text("At most 4 stop words are allowed (got 5)")
    expect(page.get_by_label("temperature")).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.get_by_label("temperature")).to_be_focused()  # the cursor waits in the first field to fix
    # Everything typed is still there.
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_have_value(NAME)
    expect(page.get_by_label("temperature")).to_have_value("3")
    expect(page.get_by_label("stop")).to_have_value("<|eot_id|>\n</s>\nUser:\n###\n<|end|>")
    shot(page, "errors-next-to-fields")
    assert not Alias.objects.filter(alias=NAME).exists()

    page.get_by_label("temperature").fill("0.7")
    page.get_by_label("stop").fill("<|eot_id|>\n</s>\nUser:\n###")
    page.get_by_role("button", name="Create alias").click()
    expect(flash(page)).to_have_text(f"Created alias {NAME}.")
    assert_titled(page, NAME)  # the new alias's own page, wherever the list would have put it
    shot(page, "created")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Aliases").click()
    assert_titled(page, "Aliases")

    # Quick search: the table changes in place and the address follows, so reload and back keep the search.
    search = page.get_by_label("Search")
    search.fill("journey")
    expect(page).to_have_url(re.compile(r"[?&]q=journey"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-alias", NAME)
    shot(page, "found-by-quick-search")

    search.fill("")
    expect(rows(page)).to_have_count(13)
    page.locator("#alias-rows thead").get_by_role("link", name="Temperature").click()
    expect(page).to_have_url(re.compile(r"[?&]sort=temperature"))
    expect(page.locator("#alias-rows th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("navigation", name="Rows per page").get_by_role("link", name="10", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]per_page=10"))
    expect(page.get_by_test_id("alias-count")).to_contain_text("Showing 1–10 of 13 aliases")
    expect(rows(page)).to_have_count(10)
    expect(page).to_have_url(re.compile(r"sort=temperature"))  # the sort stays
    shot(page, "sorted-by-temperature-10-per-page")
    list_url = page.url

    # Edit, from the list; saving comes back to the same list, sort and page size.
    search.fill("journey")
    expect(rows(page)).to_have_count(1)
    page.get_by_role("link", name=NAME, exact=True).click()
    assert_titled(page, f"Edit {NAME}")
    page.get_by_label("n_ctx").fill("8192")
    shot(page, "editing")
    # Enter in a field submits the form, as keyboard users expect.
    with page.expect_navigation():
        page.get_by_label("n_ctx").press("Enter")
    expect(flash(page)).to_have_text(f"Saved alias {NAME}.")
    expect(page).to_have_url(re.compile(r"q=journey"))
    assert Alias.objects.get(alias=NAME).n_ctx == 8192

    # Duplicate it: the copy starts with every value of the original and a name of its own.
    page.get_by_role("link", name=NAME, exact=True).click()
    page.get_by_role("link", name="Duplicate").click()
    assert_titled(page, f"Duplicate {NAME}")
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_have_value(COPY)
    expect(page.get_by_label("n_ctx")).to_have_value("8192")
    page.get_by_role("button", name="Create alias").click()
    expect(flash(page)).to_have_text(f"Created alias {COPY}.")
    assert_titled(page, COPY)

    # Delete the copy, after a confirmation page that says what will happen.
    page.goto(list_url)
    page.get_by_label("Search").fill("copy")
    expect(rows(page)).to_have_count(1)
    page.get_by_role("link", name=COPY, exact=True).click()
    page.get_by_role("link", name="Delete").click()
    assert_titled(page, f"Delete {COPY}")
    expect(page.get_by_role("heading", name=f"Delete alias {COPY}?")).to_be_visible()
    shot(page, "confirm-delete")
    page.get_by_role("button", name=f"Delete {COPY}").click()
    expect(flash(page)).to_have_text(f"Deleted alias {COPY}.")
    assert list(Alias.objects.filter(alias__startswith="journey").values_list("alias", flat=True)) == [NAME]

    # The same list on a phone: the menu folds away and nothing pushes the page sideways.
    page.set_viewport_size(PHONE)
    page.goto(list_url)
    expect(page.get_by_role("button", name="Toggle navigation")).to_be_visible()
    assert_fits_width(page)
    shot(page, "phone-alias-list")
    page.get_by_role("button", name="Toggle navigation").click()
    expect(page.locator("#main-nav")).to_have_class(re.compile(r"\bshow\b"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot(page, "phone-menu-open")
    page.keyboard.press("Escape")  # closes the menu again
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    page.goto("/aliases/-/new/")
    assert_fits_width(page)
    shot(page, "phone-alias-form")


def test_a_draft_survives_a_reload_and_goes_away_once_saved(page, editor, shot):
    login(page, editor)
    page.goto("/aliases/-/new/")
    page.get_by_label(ALIAS_LABEL, exact=True).fill("drafty")
    page.get_by_label("Repo*", exact=True).fill("acme/Drafty-GGUF")
    page.get_by_label("Filename*", exact=True).fill("drafty.Q4_K_M.gguf")
    page.get_by_label("temperature").fill("1.25")
    page.wait_for_timeout(600)  # the draft is written 300 ms after the last keystroke
    page.reload()  # a reload, a closed tab or a crashed browser: the page comes back empty...
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_have_value("")
    offer = page.get_by_test_id("draft-offer")
    expect(offer).to_contain_text("You have unsaved changes to this form")  # ...and offers what was typed
    shot(page, "draft-offered")
    offer.get_by_role("button", name="Restore draft").click()
    expect(offer).to_have_count(0)
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_have_value("drafty")
    expect(page.get_by_label("temperature")).to_have_value("1.25")
    shot(page, "draft-restored")
    page.get_by_role("button", name="Create alias").click()
    expect(flash(page)).to_have_text("Created alias drafty.")
    assert Alias.objects.get(alias="drafty").temperature == 1.25

    page.goto("/aliases/-/new/")  # saved: nothing to offer any more
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_be_visible()
    page.wait_for_timeout(200)
    expect(page.get_by_test_id("draft-offer")).to_have_count(0)

    # A draft can also be thrown away.
    page.get_by_label(ALIAS_LABEL, exact=True).fill("throwaway")
    page.wait_for_timeout(600)
    page.reload()
    page.get_by_test_id("draft-offer").get_by_role("button", name="Discard").click()
    page.reload()
    expect(page.get_by_label(ALIAS_LABEL, exact=True)).to_have_value("")
    page.wait_for_timeout(200)
    expect(page.get_by_test_id("draft-offer")).to_have_count(0)


def test_two_editors_on_one_alias_nothing_is_overwritten_or_lost(new_context, editor, make_user, shot):
    # Made as the pages make it, so its history holds the version both editors open.
    alias_create(
        data={"alias": "shared", "repo": "acme/Shared-GGUF", "filename": "shared.Q4_K_M.gguf", "temperature": 0.7},
        by=editor,
    )
    second_editor = make_user("editor", "eddie-editor")
    first = new_context().new_page()
    second = new_context().new_page()
    login(first, editor)
    login(second, second_editor)
    first.goto("/aliases/shared/edit/")
    second.goto("/aliases/shared/edit/")

    first.get_by_label("temperature").fill("0.2")
    first.get_by_role("button", name="Save changes").click()
    expect(flash(first)).to_have_text("Saved alias shared.")

    # The second editor saved from the page opened before that change: refused, with the change shown.
    second.get_by_label("temperature").fill("1.1")
    second.get_by_label("n_ctx").fill("4096")
    second.get_by_role("button", name="Save changes").click()
    conflict = second.get_by_test_id("version-conflict")
    expect(conflict).to_contain_text(f"shared was changed by {editor.username} while you were editing")
    # Field, when you opened it, saved now, your value, and the choice (both changed it).
    temperature_row = conflict.locator("tbody tr").filter(has=second.locator("th", has_text="temperature"))
    expect(temperature_row.locator("td")).to_have_text(["0.7", "0.2", "1.1", re.compile(r"keep theirs\s+use mine")])
    # Nothing typed is lost.
    expect(second.get_by_label("temperature")).to_have_value("1.1")
    expect(second.get_by_label("n_ctx")).to_have_value("4096")
    shot(second, "second-save-refused")
    shared = Alias.objects.get(alias="shared")
    assert (shared.temperature, shared.n_ctx) == (0.2, None)

    # Both changed temperature: saving again without a choice asks again; "use mine" for it, then the save merges.
    second.get_by_role("button", name="Save changes").click()
    expect(second.get_by_test_id("version-conflict")).to_be_visible()
    second.get_by_test_id("version-conflict").get_by_label("use mine").check()
    second.get_by_role("button", name="Save changes").click()
    expect(flash(second)).to_have_text("Saved alias shared.")
    shot(second, "saved-knowingly")
    shared.refresh_from_db()
    assert (shared.temperature, shared.n_ctx, shared.updated_by) == (1.1, 4096, second_editor)
