"""Queue order on the downloads page in Chromium (issue 11, item 3): an operator moves a queued download to the
top on a phone-width page, and sets the global speed limit; the cards keep every part visible."""

from __future__ import annotations

from playwright.sync_api import expect

from modelfiles.models import Download, DownloadLimits
from tests.browser.helpers import BROWSER_TEST, PHONE, assert_fits_width, login
from tests.modelfiles import make_download

pytestmark = BROWSER_TEST

MB = 1024 * 1024


def test_an_operator_moves_a_download_to_the_top_and_limits_the_bandwidth(new_context, operator):
    first = make_download(filename="first-model.Q4_K_M.gguf", status=Download.Status.QUEUED)
    second = make_download(filename="second-model.Q4_K_M.gguf", status=Download.Status.QUEUED)
    page = new_context(viewport=PHONE).new_page()
    login(page, operator)
    page.goto("/files/downloads/")
    cards = page.locator("#active-downloads .active-download")
    expect(cards.first).to_contain_text("first-model")
    expect(cards.filter(has_text="second-model")).to_contain_text("place 2 in the queue")
    cards.filter(has_text="second-model").get_by_role("button", name="Top").click()
    expect(page.locator(".messages .alert")).to_contain_text("to the top of the queue")
    expect(cards.first).to_contain_text("second-model")
    expect(cards.first).to_contain_text("place 1 in the queue")
    expect(cards.filter(has_text="first-model")).to_contain_text("place 2 in the queue")
    assert Download.objects.filter(status=Download.Status.QUEUED).order_by(*Download.QUEUE_ORDER).first() == second
    assert first.pk

    limits = page.get_by_test_id("download-limits")
    limits.get_by_label("Global speed limit in MB/s (empty: no limit)").fill("25")
    limits.get_by_role("button", name="Set limit").click()
    expect(page.locator(".messages .alert")).to_contain_text("Downloads now share at most 25.0 MB/s.")
    expect(page.get_by_test_id("download-limits")).to_contain_text("25.0 MB/s shared")
    assert DownloadLimits.objects.get().max_speed == 25 * MB
    assert_fits_width(page)
