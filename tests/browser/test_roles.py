"""A viewer reads every page and meets no write button (a typed write URL gets the friendly 403 page); an admin
reads the dashboard's counts and storage summary and rescans the cache."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from modelfiles.models import Download
from modelfiles.services import modelfile_sync
from tests.browser.helpers import (
    BROWSER_TEST,
    PHONE,
    assert_fits_width,
    assert_inputs_labelled,
    assert_titled,
    flash,
    login,
)
from tests.gguf_files import tiny_gguf
from tests.modelfiles import cache_file, make_download, make_modelfile

pytestmark = BROWSER_TEST

WRITE_CONTROLS = ("Create alias", "Edit", "Delete", "Duplicate", "Pull a file", "Rescan", "Cancel", "Retry", "Pull")


def assert_no_write_controls(page: Page) -> None:
    for name in WRITE_CONTROLS:
        expect(page.get_by_role("main").get_by_role("link", name=name, exact=True)).to_have_count(0)
        expect(page.get_by_role("main").get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Create alias from this file")).to_have_count(0)


def test_viewer_reads_everything_and_changes_nothing(page, viewer, alias_factory, shot):
    alias_factory(alias="llama3:instruct", repo="acme/Llama-GGUF", filename="llama.Q4_K_M.gguf", temperature=0.6)
    alias_factory(alias="phi3:mini", repo="acme/Phi-GGUF", filename="phi.Q8_0.gguf")
    make_modelfile(repo="acme/Llama-GGUF", filename="llama.Q4_K_M.gguf", size=4_920_000_000)
    make_download(repo="acme/Phi-GGUF", filename="phi.Q8_0.gguf", status=Download.Status.QUEUED)
    make_download(status=Download.Status.FAILED, error_code="file_not_found", error_message="No such file; pick one.")
    make_download(status=Download.Status.COMPLETED, bytes_total=1_000_000, bytes_done=1_000_000)
    login(page, viewer)

    assert_titled(page, "Dashboard")
    expect(page.get_by_test_id("alias-count")).to_have_text("2")
    expect(page.get_by_test_id("recent-failures")).to_contain_text("No such file; pick one.")
    assert_no_write_controls(page)
    shot(page, "dashboard")

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Aliases").click()
    assert_titled(page, "Aliases")
    expect(page.locator("#alias-rows tbody tr")).to_have_count(2)
    assert_no_write_controls(page)
    assert_inputs_labelled(page)
    shot(page, "aliases")
    page.get_by_role("link", name="llama3:instruct").click()  # a viewer's link opens the read-only page
    assert_titled(page, "llama3:instruct")
    expect(page.locator('[data-field="temperature"]')).to_have_text("0.6")
    expect(page.locator("time").first).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    assert_no_write_controls(page)
    shot(page, "alias-detail")

    nav.get_by_role("link", name="Model files").click()
    assert_titled(page, "Model files")
    expect(page.locator("#modelfile-rows tbody tr")).to_have_count(1)
    expect(page.locator("#modelfile-rows")).to_contain_text("4.6 GB")  # sizes read as people read them
    expect(nav.get_by_role("link", name="Model files")).to_have_attribute("aria-current", "page")
    assert_no_write_controls(page)
    shot(page, "model-files")

    nav.get_by_role("link", name="Downloads").click()
    assert_titled(page, "Downloads")
    expect(page.locator("#active-downloads .active-download")).to_have_count(1)
    expect(page.locator("#download-rows tbody tr")).to_have_count(2)  # History: the finished ones, not the active
    expect(nav.get_by_role("link", name="Pull")).to_have_count(0)
    assert_no_write_controls(page)
    shot(page, "downloads")

    # Typing a write address gets a page in the app's own style that says why, not a bare error.
    for url in ("/aliases/-/new/", "/aliases/llama3:instruct/edit/", "/aliases/phi3:mini/delete/", "/files/pull/"):
        response = page.goto(url)
        assert response.status == 403, url
        assert_titled(page, "You can't do that")
        expect(page.get_by_test_id("error-page")).to_contain_text("Your role does not allow this action")
        expect(page.get_by_test_id("error-page")).to_contain_text(
            f"signed in as {viewer.username} with the role viewer"
        )
    expect(nav).to_be_visible()
    shot(page, "forbidden")
    page.goto("/aliases/")
    page.goto("/aliases/-/new/")
    page.get_by_role("button", name="Go back").click()
    assert_titled(page, "Aliases")

    response = page.goto("/aliases/no-such-alias/")
    assert response.status == 404
    assert_titled(page, "Not found")
    expect(page.get_by_test_id("error-page")).to_contain_text("/aliases/no-such-alias/")
    shot(page, "not-found")
    page.get_by_role("link", name="Back to the dashboard").click()
    assert_titled(page, "Dashboard")
    assert Download.objects.filter(status=Download.Status.QUEUED).count() == 1


def test_admin_sees_the_dashboard_and_the_storage_summary(page, admin_user, hf_home, shot):
    # Real GGUF headers (only files that can load get a generated alias), padded to the sizes the summary shows.
    llama, phi = tiny_gguf(), tiny_gguf(file_type=7, seed=1)
    cache_file(hf_home, "acme/Llama-GGUF", "llama.Q4_K_M.gguf", content=llama + b"\0" * (300_004 - len(llama)))
    cache_file(hf_home, "acme/Phi-GGUF", "phi.Q8_0.gguf", content=phi + b"\1" * (200_004 - len(phi)))
    modelfile_sync()
    make_download(
        repo="acme/Gated-GGUF",
        filename="gated.Q4_K_M.gguf",
        status=Download.Status.FAILED,
        error_code="gated_repo",
        error_message="acme/Gated-GGUF is gated: accept its licence on the Hub with your account, then set "
        "HF_TOKEN to a token of that account for the workers and retry.",
    )
    login(page, admin_user)

    assert_titled(page, "Dashboard")
    expect(page.get_by_test_id("file-count")).to_have_text("2")
    # The two files are generated as model aliases too (read-only, one per file).
    expect(page.get_by_test_id("alias-summary")).to_contain_text("0 made here · 2 from model files")
    storage = page.get_by_test_id("storage-summary")
    expect(storage.get_by_test_id("disk-used")).to_have_text("488.3 KB")
    expect(storage.get_by_test_id("disk-free")).to_have_text(re.compile(r"^\d+(\.\d)? [KMGT]?B$"))
    expect(storage.get_by_test_id("cache-dir")).to_have_text(str(hf_home / "hub"))
    failures = page.get_by_test_id("recent-failures")
    expect(failures).to_contain_text("is gated: accept its licence")
    expect(failures.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("link", name="Pull a file").first).to_be_visible()
    expect(page.get_by_role("link", name="Create alias")).to_be_visible()
    shot(page, "dashboard")
    page.set_viewport_size(PHONE)
    assert_fits_width(page)
    shot(page, "dashboard-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Model files").click()
    expect(page.locator("#modelfile-rows tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Rescan").click()
    expect(flash(page)).to_have_text("Rescanned the cache: 0 new, 0 gone, 2 files.")
    shot(page, "model-files-rescanned")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page).to_have_title(re.compile(r"Site administration"))
