"""An editor looks through an alias's history, compares two versions, reverts to one and restores a deletion."""

from __future__ import annotations

from playwright.sync_api import expect

from aliases.models import Alias
from aliases.services import alias_create, alias_delete, alias_update
from tests.browser.helpers import BROWSER_TEST, flash, login

pytestmark = BROWSER_TEST


def test_compare_two_versions_revert_and_restore(page, editor, make_user, shot):
    other = make_user("editor", "olga-other")
    alias = alias_create(
        data={"alias": "timeline", "repo": "acme/Time-GGUF", "filename": "time.Q4_K_M.gguf"}, by=editor
    )
    alias = alias_update(alias=alias, data={"temperature": 0.3}, expected_version=1, by=other)
    alias_update(alias=alias, data={"temperature": 1.4, "n_ctx": 8192}, expected_version=2, by=editor)
    login(page, editor)
    page.goto("/aliases/timeline/")
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History of timeline")).to_be_visible()
    expect(page.get_by_test_id("version-list").locator("tbody tr")).to_have_count(3)

    page.get_by_label("Compare from version 2").check()
    page.get_by_label("Compare to version 3").check()
    page.get_by_role("button", name="Compare selected versions").click()
    diff = page.get_by_test_id("version-diff")
    expect(diff).to_contain_text("Version 2 compared with version 3")
    changed = diff.locator("tr[data-changed]")
    expect(changed).to_have_count(2)
    expect(changed.filter(has=page.locator("th", has_text="temperature")).locator("td")).to_have_text(["0.3", "1.4"])
    shot(page, "versions-compared")

    page.locator('tr[data-version="2"]').get_by_role("link", name="Revert to this version").click()
    expect(page.get_by_role("heading", name="Revert timeline to version 2?")).to_be_visible()
    page.get_by_role("button", name="Revert to version 2").click()
    expect(flash(page)).to_have_text("Reverted timeline to version 2; saved as version 4.")
    expect(page.locator('tr[data-version="4"]')).to_contain_text("current")
    reverted = Alias.objects.get(alias="timeline")
    assert (reverted.temperature, reverted.n_ctx, reverted.version) == (0.3, None, 4)

    alias_delete(alias=reverted, by=editor)
    page.goto("/aliases/")
    page.get_by_role("link", name="Deleted aliases").click()
    page.locator('tr[data-alias="timeline"]').get_by_role("button", name="Restore").click()
    expect(flash(page)).to_have_text("Restored alias timeline (version 5).")
    assert Alias.objects.get(alias="timeline").temperature == 0.3
