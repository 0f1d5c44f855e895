"""An operator pulls model files from a Hub (the test Hub on 127.0.0.1), with a real Celery worker doing the work:
lists a repo's GGUF files, pulls one and watches it arrive; pulls from a gated repo; cancels; retries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from modelfiles.models import Download, ModelFile
from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, assert_titled, flash, login
from tests.hub.server import FakeHub, Generated
from tests.workers import celery_worker, set_hub_env

pytestmark = [*BROWSER_TEST, pytest.mark.worker]

MIB = 1024 * 1024
REPO = "acme/Journey-GGUF"
WATCHED = "journey.Q4_K_M.gguf"


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


@pytest.fixture(scope="module")
def hf_env(fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One cache and one Hub for the module's worker and for the live server, which runs in this process and
    reads HF_HOME and HF_ENDPOINT when it needs them."""
    env = {
        "HF_HOME": str(tmp_path_factory.mktemp("operator") / "hf_home"),
        "HF_ENDPOINT": fake_hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "MODELDESK_RETRY_BASE_SECONDS": "0.05",
        "MODELDESK_RETRY_CAP_SECONDS": "0.2",
        # A Hub that keeps failing gives up quickly, so the journey can retry it.
        "MODELDESK_MAX_ATTEMPTS": "2",
    }
    with pytest.MonkeyPatch.context() as patch:
        set_hub_env(patch, env)
        yield env


@pytest.fixture
def hf_home(hf_env: dict[str, str]) -> Path:
    """Replaces the per-test empty cache: here the worker process and the live server share the module's."""
    return Path(hf_env["HF_HOME"])


@pytest.fixture(scope="module")
def worker(django_db_setup, hf_env: dict[str, str]):
    # One worker for the module: starting one costs seconds, and each test's files have names of their own.
    with celery_worker(extra_env=hf_env) as process:
        yield process


@pytest.fixture
def hub(fake_hub: FakeHub, worker) -> Iterator[FakeHub]:
    yield fake_hub
    fake_hub.faults.clear()


# What the Active card of a file shows now, read in one go (null once the card is gone).
READ_CARD = """(filename) => {
    const card = [...document.querySelectorAll("#active-downloads .active-download")]
        .find((element) => element.textContent.includes(filename));
    if (!card) { return null; }
    // A figure that is not known yet (no speed while queued) is left out of the card: "" here.
    const text = (field) => card.querySelector(`[data-field="${field}"]`)?.textContent.trim() ?? "";
    return {percent: text("percent"), speed: text("speed"),
            bar: card.querySelector(".progress").getAttribute("aria-valuenow")};
}"""


def active_card(page: Page, filename: str):
    return page.locator("#active-downloads .active-download").filter(has_text=filename)


def history_row(page: Page, filename: str):
    return page.locator("#download-rows tbody tr").filter(has_text=filename)


def pull(page: Page, repo: str, filename: str) -> None:
    page.goto("/files/pull/")
    page.get_by_label("Repository*", exact=True).fill(repo)
    page.get_by_label("File*", exact=True).fill(filename)
    page.locator("#pull-form").get_by_role("button", name="Pull", exact=True).click()
    expect(flash(page)).to_have_text(f"Queued {repo}/{filename}@main.")
    assert_titled(page, "Downloads")


def test_operator_lists_picks_pulls_and_watches_the_progress(page, operator, hub, shot):
    hub.add_repo(
        REPO,
        files={WATCHED: Generated(12 * MIB), "journey.Q8_0.gguf": Generated(2 * MIB), "README.md": b"# Journey\n"},
    )
    # Slow enough to watch (about four seconds), fast enough for a test.
    hub.faults.set(throttle_bytes_per_second=3 * MIB, path=WATCHED)
    login(page, operator)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pull").click()
    assert_titled(page, "Pull a model file")
    assert_inputs_labelled(page)
    page.get_by_label("Repository*", exact=True).fill(REPO)
    page.get_by_role("button", name="List GGUF files").click()
    files = page.locator("#repo-file-rows tbody tr")
    expect(files).to_have_count(2)  # GGUF files only, with their sizes
    expect(files.filter(has_text=WATCHED)).to_contain_text("12.0 MB")
    files.filter(has_text=WATCHED).get_by_role("link", name="Pick").click()
    expect(page.get_by_label("File*", exact=True)).to_have_value(WATCHED)
    expect(page.get_by_label("File*", exact=True)).to_be_focused()
    shot(page, "repo-files-listed-and-picked")
    # The form's own Pull (each listed file also has a one-click Pull of its own).
    page.locator("#pull-form").get_by_role("button", name="Pull", exact=True).click()
    expect(flash(page)).to_have_text(f"Queued {REPO}/{WATCHED}@main.")

    # The page is never reloaded while the numbers move: a marker set now must still be there at the end.
    page.evaluate("window.__sameDocument = true")
    card = active_card(page, WATCHED)
    expect(card).to_be_visible()
    seen_percent: list[str] = []
    seen_speed: list[str] = []
    took_progress_shot = False
    focused_at, focus_kept = "", None
    for _ in range(160):  # until the card goes away (completed), 24 s at most
        values = page.evaluate(READ_CARD, WATCHED)
        if values is None:
            break
        if not seen_percent or seen_percent[-1] != values["percent"]:
            seen_percent.append(values["percent"])
        if not seen_speed or seen_speed[-1] != values["speed"]:
            seen_speed.append(values["speed"])
        if not took_progress_shot and values["bar"] not in (None, "0.0", "100.0"):
            shot(page, "downloading-with-progress")
            took_progress_shot = True
            # A keyboard user on the Cancel button keeps the focus while the card is redrawn.
            card.get_by_role("button", name="Cancel").focus()
            focused_at = values["percent"]
        elif focused_at and focus_kept is None and values["percent"] != focused_at:
            focus_kept = page.evaluate("() => document.activeElement.id.startsWith('cancel-')")
        page.wait_for_timeout(150)
    assert took_progress_shot, f"no progress was shown between 0 and 100 %: {seen_percent}"
    moving = [value for value in seen_percent if value not in ("", "0.0 %", "100.0 %")]
    assert len(moving) >= 2, f"the bar should move in steps without a reload: {seen_percent}"
    assert any(re.fullmatch(r"\d+(\.\d)? [KM]B/s", value) for value in seen_speed), seen_speed
    assert len(seen_speed) >= 2, f"the speed should change from nothing to a figure: {seen_speed}"
    assert focus_kept is True, "the Cancel button lost the keyboard focus when the progress was redrawn"

    expect(page.get_by_test_id("no-active-downloads")).to_be_visible()
    expect(history_row(page, WATCHED).locator(".badge")).to_have_text("completed")
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "completed")
    download = Download.objects.get(filename=WATCHED)
    assert (download.status, download.bytes_done) == (Download.Status.COMPLETED, 12 * MIB)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Model files").click()
    row = page.locator("#modelfile-rows tbody tr").filter(has_text=WATCHED)
    expect(row).to_contain_text("12.0 MB")
    expect(row).to_contain_text(REPO)
    shot(page, "in-the-model-files")
    assert ModelFile.objects.filter(filename=WATCHED, present=True).exists()


def test_a_gated_repo_says_what_to_do(page, operator, hub, shot):
    hub.add_repo("acme/Gated-GGUF", files={"gated.Q4_K_M.gguf": Generated(MIB)}, gated=True)
    login(page, operator)
    page.goto("/files/pull/")
    page.get_by_label("Repository*", exact=True).fill("acme/Gated-GGUF")
    page.get_by_label("File*", exact=True).fill("gated.Q4_K_M.gguf")
    page.locator("#pull-form").get_by_role("button", name="Pull", exact=True).click()
    # Asked of the Hub before anything is queued: the form comes back with what to do, and nothing waits in line.
    assert_titled(page, "Pull a model file")
    expect(page.locator("#pull-form")).to_contain_text(
        "acme/Gated-GGUF is gated: accept its licence on the Hub with your account, then set HF_TOKEN"
    )
    expect(page.get_by_label("Repository*", exact=True)).to_have_value("acme/Gated-GGUF")
    shot(page, "gated-refused-with-advice")
    assert not Download.objects.filter(repo="acme/Gated-GGUF").exists()


def test_operator_cancels_a_slow_pull(page, operator, hub, shot):
    hub.add_repo("acme/Slow-GGUF", files={"slow.Q4_K_M.gguf": Generated(8 * MIB)})
    hub.faults.set(throttle_bytes_per_second=256 * 1024, path="slow.Q4_K_M.gguf")
    login(page, operator)
    pull(page, "acme/Slow-GGUF", "slow.Q4_K_M.gguf")
    card = active_card(page, "slow.Q4_K_M.gguf")
    expect(card.locator('[data-field="status"]')).to_have_text("downloading")
    expect(card.locator('[data-field="bytes"]')).to_contain_text(re.compile(r"^\d[\d.]* [KM]B of 8\.0 MB$"))
    shot(page, "slow-pull-running")
    card.get_by_role("button", name="Cancel").focus()  # by keyboard this time
    page.keyboard.press("Enter")
    expect(flash(page)).to_have_text(
        re.compile(r"Cancelled acme/Slow-GGUF/slow\.Q4_K_M\.gguf@main; the [\d.]+ [KM]B fetched were deleted\.")
    )
    expect(page.get_by_test_id("no-active-downloads")).to_be_visible()
    row = history_row(page, "slow.Q4_K_M.gguf")
    expect(row).to_contain_text("cancelled")
    expect(row).to_contain_text(f"Cancelled by {operator.username}; the partial file was deleted.")
    expect(row.get_by_role("button", name="Retry")).to_be_visible()
    shot(page, "cancelled")
    assert Download.objects.get(filename="slow.Q4_K_M.gguf").status == Download.Status.CANCELLED


def test_operator_retries_a_failed_pull_once_the_hub_is_back(page, operator, hub, shot):
    hub.add_repo("acme/Flaky-GGUF", files={"flaky.Q4_K_M.gguf": Generated(2 * MIB)})
    hub.faults.set(status=503, path="flaky.Q4_K_M.gguf")  # the file's server is down; the Hub answers HEAD
    login(page, operator)
    pull(page, "acme/Flaky-GGUF", "flaky.Q4_K_M.gguf")
    row = history_row(page, "flaky.Q4_K_M.gguf")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("gave up after 2 attempts. Retry when the Hub is reachable.")
    shot(page, "failed")

    hub.faults.clear()
    row.get_by_role("button", name="Retry").click()
    # Its server never sent a byte: the message claims none.
    expect(flash(page)).to_have_text("Queued acme/Flaky-GGUF/flaky.Q4_K_M.gguf@main again.")
    expect(history_row(page, "flaky.Q4_K_M.gguf")).to_contain_text("completed")
    expect(page.get_by_test_id("no-active-downloads")).to_be_visible()
    shot(page, "retried-and-completed")
    assert Download.objects.get(filename="flaky.Q4_K_M.gguf").status == Download.Status.COMPLETED


def test_operator_pauses_a_slow_pull_and_resumes_it(page, operator, hub, shot):
    name = "paused.Q4_K_M.gguf"
    hub.add_repo("acme/Pause-GGUF", files={name: Generated(4 * MIB)})
    rule = hub.faults.set(throttle_bytes_per_second=512 * 1024, path=name, times=1)
    login(page, operator)
    pull(page, "acme/Pause-GGUF", name)
    card = active_card(page, name)
    expect(card.locator('[data-field="bytes"]')).to_contain_text(re.compile(r"^\d[\d.]* [KM]B of 4\.0 MB$"))
    card.get_by_role("button", name="Pause").click()
    expect(flash(page)).to_contain_text("Paused acme/Pause-GGUF/paused.Q4_K_M.gguf@main")
    card = active_card(page, name)
    expect(card.locator('[data-field="status"]')).to_have_text("paused")
    expect(card.get_by_role("button", name="Pause")).to_have_count(0)
    expect(card.locator(".progress-bar-animated")).to_have_count(0)
    expect(history_row(page, name)).to_have_count(0)  # active: listed once, above History
    shot(page, "paused")
    download = Download.objects.get(filename=name)
    assert download.status == Download.Status.PAUSED and 0 < download.bytes_done < 4 * MIB
    assert rule.hits == 1

    card.get_by_role("button", name="Resume").click()
    expect(flash(page)).to_contain_text("Resumed acme/Pause-GGUF/paused.Q4_K_M.gguf@main: queued in its place")
    expect(history_row(page, name).locator(".badge")).to_have_text("completed")
    download.refresh_from_db()
    assert download.status == Download.Status.COMPLETED and download.verified == "sha256"
    assert hub.range_requests(name) and hub.range_requests(name)[-1] != "bytes=0-"
