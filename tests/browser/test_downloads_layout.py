"""The downloads page at a laptop's width (1366 px) and a phone's (390 px): every state on it at once, and nothing
hidden: every cell and card part is drawn inside the window, uncovered (the element at its centre is itself), and
no two cells of a row overlap. Also the cancel confirmation a download with more than a few MB fetched asks for.

With MODELDESK_SCREENSHOTS=<folder> (relative to the project), the two widths are saved there as
downloads-1366.png and downloads-390.png (docs/screenshots holds the committed ones)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from modelfiles.models import Download
from tests.browser.helpers import BROWSER_TEST, PHONE, assert_fits_width, login
from tests.modelfiles import make_download

pytestmark = BROWSER_TEST

LAPTOP = {"width": 1366, "height": 768}
MB = 1024 * 1024
REPO = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"

# Every part of the page a person reads, checked one by one: History's cells, and each active card's file,
# state, progress, figures and buttons.
PARTS = "#download-rows tbody td, #active-downloads .active-download :is([data-field], .progress, button)"

# For each part: whether it has a size, lies inside the window sideways, and is what the browser finds at its
# centre (nothing drawn over it); then, per History row, any two cells whose boxes overlap.
HIDDEN_PARTS = """(selector) => {
    const problems = [];
    const width = document.documentElement.clientWidth;
    const name = (el) => `${el.dataset.label || el.dataset.field || el.tagName.toLowerCase()}: `
        + el.textContent.trim().replace(/\\s+/g, " ").slice(0, 50);
    for (const el of document.querySelectorAll(selector)) {
        if (!el.textContent.trim() && !el.matches(".progress")) { continue; }  // an empty cell shows nothing
        // Instant: Bootstrap makes scrolling smooth, and the box must be read where the scroll ends.
        el.scrollIntoView({block: "center", inline: "nearest", behavior: "instant"});
        const box = el.getBoundingClientRect();
        if (box.width < 1 || box.height < 1) { problems.push(`no size: ${name(el)}`); continue; }
        if (box.left < -0.5 || box.right > width + 0.5) {
            problems.push(`outside the window (${Math.round(box.left)}..${Math.round(box.right)} of ${width}): `
                          + name(el));
            continue;
        }
        const found = document.elementFromPoint(box.left + box.width / 2, box.top + Math.min(box.height / 2, 8));
        if (!found || !(el === found || el.contains(found) || found.contains(el))) {
            problems.push(`covered by ${found ? found.outerHTML.slice(0, 80) : "nothing"}: ${name(el)}`);
        }
    }
    for (const row of document.querySelectorAll("#download-rows tbody tr")) {
        const cells = [...row.children].filter((td) => td.textContent.trim())
            .map((td) => [td, td.getBoundingClientRect()]);
        for (let i = 0; i < cells.length; i++) {
            for (let j = i + 1; j < cells.length; j++) {
                const [a, boxA] = cells[i], [b, boxB] = cells[j];
                const x = Math.min(boxA.right, boxB.right) - Math.max(boxA.left, boxB.left);
                const y = Math.min(boxA.bottom, boxB.bottom) - Math.max(boxA.top, boxB.top);
                if (x > 0.5 && y > 0.5) { problems.push(`overlap: ${name(a)} / ${name(b)}`); }
            }
        }
    }
    window.scrollTo({top: 0, behavior: "instant"});
    return problems;
}"""


def every_state(operator) -> dict[str, Download]:
    """One download in each state the page can show, with the long names and messages real ones have."""
    now = timezone.now()
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    rows = {
        "completed": make_download(
            repo=REPO, filename="Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", status=Download.Status.COMPLETED,
            bytes_total=4_920 * MB, bytes_done=4_920 * MB, attempts=1, requested_by=operator, finished_at=ago(50),
            commit="5206a32e0bd3067aef1ce90f5528ade7d866253f", verified="sha256",
        ),
        "failed": make_download(
            repo="meta-llama/Llama-3.3-70B-Instruct-GGUF", filename="Llama-3.3-70B-Instruct-Q2_K.gguf",
            status=Download.Status.FAILED, attempts=1, requested_by=operator, finished_at=ago(40),
            error_code="gated_repo",
            error_message="meta-llama/Llama-3.3-70B-Instruct-GGUF is gated: accept its licence on the Hub with "
            "your account, then set HF_TOKEN to a token of that account on the workers and retry.",
        ),
        "gave-up": make_download(
            repo=REPO, filename="Meta-Llama-3.1-8B-Instruct-Q8_0.gguf", status=Download.Status.FAILED,
            bytes_total=8_540 * MB, bytes_done=2_311 * MB, attempts=8, requested_by=operator, finished_at=ago(30),
            error_code="network_error",
            error_message="Could not connect to download the file ([Errno 111] Connection refused) — gave up "
            "after 8 attempts. Retry when the Hub is reachable.",
        ),
        "cancelled": make_download(
            repo="Qwen/Qwen2.5-Coder-32B-Instruct-GGUF", parts=5,
            filename="qwen2.5-coder-32b-instruct-q4_k_m-00001-of-00005.gguf", status=Download.Status.CANCELLED,
            bytes_total=19_850 * MB, bytes_done=3_100 * MB, attempts=1,
            requested_by=operator, finished_at=ago(20), error_code="cancelled",
            error_message=f"Cancelled by {operator.username}; the partial file was deleted.",
        ),
        "downloading": make_download(
            repo=REPO, filename="Meta-Llama-3.1-8B-Instruct-Q6_K.gguf", status=Download.Status.DOWNLOADING,
            bytes_total=6_600 * MB, bytes_done=2_750 * MB, speed=48.5 * MB, eta=79, attempts=1, requested_by=operator,
            started_at=ago(2), worker="celery@gpu-a",
        ),
        "waiting": make_download(
            repo="TheBloke/Mistral-7B-Instruct-v0.2-GGUF", filename="mistral-7b-instruct-v0.2.Q5_K_M.gguf",
            status=Download.Status.DOWNLOADING, bytes_total=5_130 * MB, bytes_done=1_024 * MB, attempts=3,
            retry_at=now + timedelta(minutes=10), requested_by=operator, started_at=ago(9), error_code="network_error",
            error_message="Could not connect to download the file ([Errno 111] Connection refused); will try again.",
        ),
        "paused": make_download(
            repo="google/gemma-2-9b-it-GGUF", filename="gemma-2-9b-it-Q4_K_M.gguf", status=Download.Status.PAUSED,
            bytes_total=5_760 * MB, bytes_done=1_900 * MB, requested_by=operator, started_at=ago(8),
        ),
        "queued": make_download(
            repo="microsoft/Phi-3-mini-4k-instruct-gguf", filename="Phi-3-mini-4k-instruct-q4.gguf",
            status=Download.Status.QUEUED, requested_by=operator, enqueued_at=now,
        ),
    }  # fmt: skip
    # Oldest first, as they were asked for: the Active list is in request order.
    for minutes, row in enumerate(reversed(list(rows.values()))):
        Download.objects.filter(pk=row.pk).update(created_at=ago(60 + minutes))
    return rows


def save_for_docs(page: Page, name: str) -> None:
    folder = os.environ.get("MODELDESK_SCREENSHOTS")
    if folder:
        path = Path(settings.BASE_DIR) / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True, animations="disabled")


@pytest.mark.parametrize(("viewport", "width"), [(LAPTOP, 1366), (PHONE, 390)], ids=["1366", "390"])
def test_nothing_on_the_downloads_page_is_hidden(new_context, operator, viewport, width, shot):
    rows = every_state(operator)
    page = new_context(viewport=viewport).new_page()
    login(page, operator)
    page.goto("/files/downloads/")
    active = page.locator("#active-downloads .active-download")
    expect(active).to_have_count(4)
    # Each active download once, in the Active list; History holds the four finished ones.
    history = page.locator("#download-rows tbody tr")
    expect(history).to_have_count(4)
    for key in ("downloading", "waiting", "paused", "queued"):
        expect(page.locator(f'[data-download="{rows[key].pk}"]')).to_have_count(1)
    card = active.filter(has_text="mistral-7b-instruct")
    expect(card.locator('[data-field="status"]')).to_contain_text("waiting to retry (attempt 4 of 8, next in")
    expect(card.locator(".progress-bar-animated")).to_have_count(0)
    expect(active.filter(has_text="Phi-3-mini")).to_contain_text("place 1 in the queue")
    expect(active.filter(has_text="gemma-2-9b")).to_contain_text("back at place 1 when resumed")
    expect(active.filter(has_text="gemma-2-9b").get_by_role("button", name="Resume")).to_be_visible()
    for name in ("Top", "Up", "Down"):  # queue order (issue 11 item 3), in the narrow cards too
        expect(active.filter(has_text="Phi-3-mini").get_by_role("button", name=name)).to_be_visible()
    expect(page.get_by_test_id("download-limits")).to_be_visible()
    if width < 768:
        # Cards: each cell says what it is, the table header is not shown.
        expect(page.locator("#download-rows thead")).to_be_hidden()
        expect(history.first.locator('td[data-label="File"]')).to_be_visible()
    assert_fits_width(page)
    problems = page.evaluate(HIDDEN_PARTS, PARTS)
    assert problems == [], "\n".join(problems)
    shot(page, f"downloads-{width}")
    save_for_docs(page, f"downloads-{width}.png")


def test_cancel_of_many_mb_asks_first_and_keep_downloading_changes_nothing(page, operator):
    rows = every_state(operator)
    login(page, operator)
    page.goto("/files/downloads/")
    card = page.locator("#active-downloads .active-download").filter(has_text="gemma-2-9b")
    card.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("cancel-stakes")).to_contain_text("has fetched 1.9 GB of 5.6 GB")
    page.get_by_role("link", name="Keep downloading").click()
    expect(page.locator("#active-downloads")).to_contain_text("gemma-2-9b")
    assert Download.objects.get(pk=rows["paused"].pk).status == Download.Status.PAUSED
    card.get_by_role("button", name="Cancel").click()
    page.get_by_test_id("confirm-cancel").click()
    expect(page.locator(".messages .alert")).to_have_text(
        "Cancelled google/gemma-2-9b-it-GGUF/gemma-2-9b-it-Q4_K_M.gguf@main; the 1.9 GB fetched were deleted."
    )
    assert Download.objects.get(pk=rows["paused"].pk).status == Download.Status.CANCELLED
