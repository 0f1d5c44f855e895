"""Live updates without waste, seen from the browser: while a download waits, each poll of the dashboard is a
bodiless 304; when it ends the page shows so without a reload and stops asking."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from modelfiles.models import Download
from modelfiles.views import ActiveDownloadsView
from tests.browser.helpers import BROWSER_TEST, login
from tests.modelfiles import make_download

pytestmark = BROWSER_TEST


@pytest.fixture
def poll_answers(monkeypatch) -> list[int]:
    """The status codes the server sent to the active-downloads poll (the live server runs in this process).

    The browser itself turns a 304 into its cached 200 for the page, so the server's answer is read here.
    """
    answers: list[int] = []
    original = ActiveDownloadsView.get

    def get(self, request, *args, **kwargs):
        response = original(self, request, *args, **kwargs)
        answers.append(response.status_code)
        return response

    monkeypatch.setattr(ActiveDownloadsView, "get", get)
    return answers


def test_the_dashboard_polls_cheaply_while_active_and_stops_after(page, viewer, poll_answers, shot):
    download = make_download(
        repo="acme/Wait-GGUF", filename="wait.Q4_K_M.gguf", status=Download.Status.QUEUED, requested_by=viewer
    )
    polls = poll_answers
    login(page, viewer)
    card = page.locator("#active-downloads .active-download")
    expect(card).to_contain_text("wait.Q4_K_M.gguf")
    page.wait_for_timeout(1_300)  # the first poll brings the fragment with its ETag
    page.evaluate("() => { document.getElementById('active-downloads').untouched = true; }")
    page.wait_for_timeout(2_200)
    # Nothing changed while it waited in the queue: the server answered "not modified" and sent no fragment,
    # and the page left the section as it was (same element, nothing redrawn).
    assert len(polls) >= 3, polls
    assert polls[0] == 200 and set(polls[1:]) == {304}, polls
    assert page.evaluate("() => document.getElementById('active-downloads').untouched") is True
    expect(card).to_contain_text("queued")
    shot(page, "waiting-in-the-queue")

    Download.objects.filter(pk=download.pk).update(status=Download.Status.COMPLETED, bytes_total=10, bytes_done=10)
    expect(page.get_by_test_id("no-active-downloads")).to_be_visible(timeout=3_000)
    asked = len(polls)
    page.wait_for_timeout(1_600)  # more than one polling interval
    assert len(polls) == asked, "the page kept polling with nothing active"
    shot(page, "nothing-active-no-polling")
