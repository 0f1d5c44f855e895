"""An operator rescans a cache that holds entries the app cannot list (a name with a backslash, a broken link):
the good files are listed, and the page says which entries were skipped and why."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.helpers import BROWSER_TEST, PHONE, assert_fits_width, flash, login
from tests.modelfiles import COMMIT, cache_file
from tests.modelfiles.test_scan import FOLDER, REPO, add_link

pytestmark = BROWSER_TEST


def test_operator_rescans_and_sees_what_was_skipped_and_why(page, operator, hf_home: Path, shot):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    cache_file(hf_home, "acme/Other-GGUF", "other.Q8_0.gguf")
    add_link(hf_home, b"bad\\name.gguf", content=b"GGUF\x00bad")
    add_link(hf_home, b"broken.Q4_K_M.gguf", content=None)
    login(page, operator)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Model files").click()
    expect(page.locator("#scan-skipped")).to_have_count(0)  # nothing scanned yet
    shot(page, "before-rescan")

    page.get_by_role("button", name="Rescan").click()
    messages = flash(page)
    expect(messages.nth(0)).to_have_text("Rescanned the cache: 2 new, 0 gone, 2 files.")
    expect(messages.nth(1)).to_have_text(
        "2 cache entries could not be listed and were skipped; see the list on the model files page."
    )
    rows = page.locator("#modelfile-rows tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#modelfile-rows")).to_contain_text("tiny.Q4_K_M.gguf")
    expect(page.locator("#modelfile-rows")).to_contain_text("other.Q8_0.gguf")
    expect(page.locator("#modelfile-rows")).not_to_contain_text("bad")

    skipped = page.locator("#scan-skipped")
    expect(skipped).to_contain_text("skipped 2 entries it could not list")
    items = skipped.get_by_role("listitem")
    expect(items).to_have_count(2)
    bad = items.filter(has_text="bad\\name.gguf")
    expect(bad.locator("code")).to_have_text(f"{FOLDER}/snapshots/{COMMIT}/bad\\name.gguf")
    expect(bad).to_contain_text("backslash")
    expect(items.filter(has_text="broken.Q4_K_M.gguf")).to_contain_text("broken link")
    shot(page, "rescanned-with-warning")
    page.set_viewport_size(PHONE)
    assert_fits_width(page)
    shot(page, "rescanned-with-warning-phone")
