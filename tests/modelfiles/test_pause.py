"""Pause, resume and cancel (issue 11, item 2) against the test Hub, with download_run on a thread as a worker
runs it; the same through a real worker process is in test_pause_worker.py. Then what the page and the API say."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from modelfiles import services
from modelfiles.cache import PARTIAL_SUFFIX, RepoPaths, local_file
from modelfiles.models import Download
from modelfiles.views import CANCEL_CONFIRM_BYTES
from tests.api_errors import assert_error
from tests.modelfiles import make_download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random, sha256_of, start_run, wait_for

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 3 * 1024 * 1024 + 321
DOWNLOADS_URL = reverse("modelfiles:downloads")
ACTIVE_URL = reverse("modelfiles:downloads-active")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[str]:
    """The tests run the task body themselves; record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


def request(filename: str = FILE) -> Download:
    download, created = services.download_request(repo=REPO, filename=filename, revision="main", by=None)
    assert created
    return download


def partial_of(content: bytes):
    return RepoPaths.for_repo(REPO).partial(hashlib.sha256(content).hexdigest())


def messages_of(response) -> list[str]:
    """The message this request added (the client follows no redirect, so earlier ones are still stored)."""
    return [str(message) for message in get_messages(response.wsgi_request)][-1:]


def url(name: str, download: Download) -> str:
    return reverse(f"modelfiles:download-{name}", args=[download.pk])


def api_url(name: str, download_id) -> str:
    return f"/api/modelfiles/status/{download_id}/{name}"


def active_section(client) -> str:
    page = client.get(DOWNLOADS_URL).content.decode()
    return page[page.index('id="active-downloads"') : page.index("</section>")]


# --- the transfer ---------------------------------------------------------------------------------------------------


def test_pause_stops_the_transfer_keeps_the_partial_file_and_resume_continues_it_with_a_range(hub, hf_env):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=700_000, times=1)
    download = request()
    thread = start_run(download)
    partial = partial_of(content)
    wait_for(lambda: Download.objects.get(pk=download.pk).bytes_done > 500_000)

    assert services.download_pause(download=download, by=None)
    paused_at = time.monotonic()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - paused_at < 3  # the transfer stops within a couple of seconds
    download.refresh_from_db()
    assert download.status == Download.Status.PAUSED
    assert download.claim is None  # the worker let go of it
    assert download.attempts == 0  # a try stopped by a pause is not a failed one
    kept = partial.stat().st_size
    assert 500_000 < kept < SIZE
    time.sleep(1.2)
    assert partial.stat().st_size == kept  # nobody writes it while paused

    assert services.download_resume(download=download, by=None)
    download.refresh_from_db()
    assert download.status == Download.Status.QUEUED
    download = services.download_run(download_id=download.pk, worker="thread")
    assert download.status == Download.Status.COMPLETED, download.error_message
    assert download.attempts == 1
    assert hub.range_requests(FILE) == [f"bytes={kept}-"]
    assert hub.bytes_sent_for(FILE) <= SIZE + 4 * 1024 * 1024  # at most what was in flight, fetched twice
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    assert download.verified == "sha256"


def test_cancel_of_a_paused_download_deletes_its_partial_file(hub, hf_env):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=700_000, times=1)
    download = request()
    thread = start_run(download)
    wait_for(lambda: Download.objects.get(pk=download.pk).bytes_done > 0)
    assert services.download_pause(download=download, by=None)
    thread.join(10)
    assert partial_of(content).exists()

    assert services.download_cancel(download=download, by=None)  # no worker holds it: deleted here, at once
    download.refresh_from_db()
    assert download.status == Download.Status.CANCELLED
    assert not partial_of(content).exists()
    assert not services.download_resume(download=download, by=None)


def test_pause_while_waiting_to_retry_keeps_the_failed_try_counted(hub, hf_env, monkeypatch):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    hub.faults.set(status_503=100)
    # A long wait between tries, so the test sees it (the policy's own jitter can make it a few ms).
    monkeypatch.setattr(services, "_backoff", lambda attempt: 30.0)
    download = request()
    thread = start_run(download)
    row = wait_for(lambda: (row := Download.objects.get(pk=download.pk)).waiting_to_retry and row)
    assert (row.status, row.attempts, row.error_code) == (Download.Status.DOWNLOADING, 1, "hub_unavailable")
    assert "attempt" not in row.error_message  # the numbers are the row's, shown beside it
    assert 28 < (row.retry_at - timezone.now()).total_seconds() <= 30

    assert services.download_pause(download=download, by=None)
    thread.join(5)
    assert not thread.is_alive()  # the wait notices within a second
    download.refresh_from_db()
    assert (download.status, download.attempts, download.retry_at) == (Download.Status.PAUSED, 1, None)


def test_a_paused_download_keeps_its_place_in_the_queue(hub, hf_env):
    files = {f"q{index}.Q4_K_M.gguf": pseudo_random(2000, seed=index) for index in range(3)}
    hub.add_repo(REPO, files=files)
    first, second, third = (request(name) for name in files)
    assert services.download_pause(download=first, by=None)
    assert services.download_resume(download=first, by=None)  # its message now comes after the others'

    # The worker takes a message (the third's) and works the queue from its head: the resumed one first, then
    # the others, each once its slot is free.
    assert services.download_run_next(download_id=third.pk, worker="test").pk == third.pk
    rows = list(Download.objects.filter(pk__in=[first.pk, second.pk, third.pk]).order_by("started_at"))
    assert [row.pk for row in rows] == [first.pk, second.pk, third.pk]
    assert {row.status for row in rows} == {Download.Status.COMPLETED}
    assert services.download_run_next(download_id=second.pk, worker="test") is None  # nothing left: no-op


def test_a_second_request_for_a_paused_file_gets_the_paused_download(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    download = request()
    assert services.download_pause(download=download, by=None)
    again, created = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    assert (again.pk, created, again.status) == (download.pk, False, Download.Status.PAUSED)


def test_only_queued_or_downloading_downloads_pause_and_only_paused_ones_resume():
    for status in (Download.Status.VERIFYING, Download.Status.COMPLETED, Download.Status.FAILED):
        download = make_download(status=status)
        assert not services.download_pause(download=download, by=None)
        assert not services.download_resume(download=download, by=None)
        download.refresh_from_db()
        assert download.status == status


# --- the page -------------------------------------------------------------------------------------------------------


def test_waiting_to_retry_is_its_own_state_with_the_attempt_and_the_time_left(viewer_client):
    make_download(
        status=Download.Status.DOWNLOADING,
        attempts=4,
        retry_at=timezone.now() + timedelta(seconds=12.5),
        error_code="network_error",
        error_message="Could not connect to download the file (Connection refused); will try again.",
    )
    section = active_section(viewer_client)
    assert f"waiting to retry (attempt 5 of {services.MAX_ATTEMPTS}, next in 13 s)" in section
    assert 'data-state="waiting_to_retry"' in section
    assert "text-bg-primary" not in section  # not the blue "downloading" badge
    assert "progress-bar-animated" not in section  # nothing moves
    assert "attempt 4" not in section  # one count, everywhere
    assert "0 bytes" not in section and "ETA" not in section


def test_queued_downloads_show_their_place_and_no_moving_bar(viewer_client):
    first = make_download(status=Download.Status.QUEUED, enqueued_at=timezone.now())
    paused = make_download(status=Download.Status.PAUSED, bytes_total=10_000_000, bytes_done=2_500_000)
    second = make_download(status=Download.Status.QUEUED, enqueued_at=timezone.now())
    section = active_section(viewer_client)
    cards = {download.pk: section[section.index(f'data-download="{download.pk}"') :] for download in (first, paused)}
    assert "place 1 in the queue" in cards[first.pk][:3000]
    assert "back at place 2 when resumed" in cards[paused.pk][:3000]
    later = section[section.index(f'data-download="{second.pk}"') :]
    assert "place 2 in the queue" in later
    assert "progress-bar-animated" not in section and "progress-bar-striped" not in section
    assert "0 bytes" not in section and "— of —" not in section and "ETA" not in section
    assert "2.4 MB of 9.5 MB" in section  # a paused one says how far it got


def test_buttons_follow_the_state(operator_client, viewer_client):
    queued = make_download(status=Download.Status.QUEUED)
    paused = make_download(status=Download.Status.PAUSED)
    section = active_section(operator_client)
    assert url("pause", queued) in section and url("resume", queued) not in section
    assert url("resume", paused) in section and url("pause", paused) not in section
    assert url("cancel", queued) in section and url("cancel", paused) in section
    for name in ("pause", "resume", "cancel"):
        assert f"/{name}/" not in active_section(viewer_client)


def test_pause_and_resume_buttons_say_what_happened(operator_client):
    download = make_download(status=Download.Status.DOWNLOADING, filename="big.gguf", bytes_done=3 * 1024 * 1024)
    back = f"{DOWNLOADS_URL}?sort=-created_at"
    response = operator_client.post(url("pause", download), {"next": back})
    assert (response.status_code, response["Location"]) == (302, back)
    assert messages_of(response) == [
        "Paused acme/Tiny-GGUF/big.gguf@main; the 3.0 MB fetched are kept. Resume continues where it stopped."
    ]
    response = operator_client.post(url("resume", download))
    assert messages_of(response) == [
        "Resumed acme/Tiny-GGUF/big.gguf@main: queued in its place, it continues from the 3.0 MB already fetched."
    ]
    download.refresh_from_db()
    assert download.status == Download.Status.QUEUED
    response = operator_client.post(url("resume", download))
    assert messages_of(response) == ["acme/Tiny-GGUF/big.gguf@main is queued, not paused: nothing to resume."]


def test_cancel_of_more_than_a_few_mb_asks_first_and_offers_pause(operator_client):
    download = make_download(
        status=Download.Status.DOWNLOADING, bytes_total=400 * 1024 * 1024, bytes_done=CANCEL_CONFIRM_BYTES + 1
    )
    response = operator_client.post(url("cancel", download), {"next": DOWNLOADS_URL})
    assert response.status_code == 200
    page = response.content.decode()
    assert "deletes the partial file" in page and 'name="confirm"' in page
    assert url("pause", download) in page  # pause instead
    download.refresh_from_db()
    assert download.status == Download.Status.DOWNLOADING  # nothing happened yet
    response = operator_client.post(url("cancel", download), {"next": DOWNLOADS_URL, "confirm": "1"})
    assert response.status_code == 302
    download.refresh_from_db()
    assert download.status == Download.Status.CANCELLED
    assert messages_of(response) == [
        f"Cancelled acme/Tiny-GGUF/{download.filename}@main; the 8.0 MB fetched were deleted."
    ]


def test_cancel_of_a_few_bytes_needs_no_confirmation(operator_client):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_done=1024)
    assert operator_client.post(url("cancel", download)).status_code == 302
    download.refresh_from_db()
    assert download.status == Download.Status.CANCELLED


def test_retry_claims_bytes_only_when_they_are_on_disk(operator_client, hf_home):
    gated = make_download(status=Download.Status.FAILED, error_code="gated_repo", error_message="Gated.")
    response = operator_client.post(url("retry", gated))
    assert messages_of(response) == [f"Queued acme/Tiny-GGUF/{gated.filename}@main again."]

    etag = "ab" * 32
    partial = RepoPaths.for_repo("acme/Tiny-GGUF").partial(etag)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 1024 * 1024)
    failed = make_download(status=Download.Status.FAILED, etag=etag, bytes_total=5_000_000, bytes_done=1024 * 1024)
    response = operator_client.post(url("retry", failed))
    assert messages_of(response) == [
        f"Queued acme/Tiny-GGUF/{failed.filename}@main again; it resumes from the 1.0 MB already fetched."
    ]
    # The checksum failed and the bytes were thrown away: the row's count is history, not what is kept.
    damaged = make_download(status=Download.Status.FAILED, etag="cd" * 32, bytes_total=5_000_000, bytes_done=5_000_000)
    response = operator_client.post(url("retry", damaged))
    assert "resumes" not in messages_of(response)[0]


def test_recent_failures_drop_a_file_that_completed_since(operator_client):
    failed = make_download(status=Download.Status.FAILED, filename="flaky.gguf", error_code="network_error",
                           finished_at=timezone.now())  # fmt: skip
    other = make_download(status=Download.Status.FAILED, filename="other.gguf", finished_at=timezone.now())
    dashboard = operator_client.get("/").content.decode()
    assert f'data-download="{failed.pk}"' in dashboard and f'data-download="{other.pk}"' in dashboard
    make_download(status=Download.Status.COMPLETED, filename="flaky.gguf", finished_at=timezone.now())
    dashboard = operator_client.get("/").content.decode()
    assert f'data-download="{failed.pk}"' not in dashboard
    assert f'data-download="{other.pk}"' in dashboard


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_operators_and_admins_pause_and_resume(request, client_for, role):
    client = client_for(request.getfixturevalue(role))
    queued, paused = make_download(), make_download(status=Download.Status.PAUSED)
    assert client.post(url("pause", queued)).status_code == 403
    assert client.post(url("resume", paused)).status_code == 403
    assert client.get(url("cancel", queued)).status_code == 403
    assert_error(client.post(api_url("pause", queued.pk)), 403, "forbidden_error")
    assert_error(client.post(api_url("resume", paused.pk)), 403, "forbidden_error")
    queued.refresh_from_db()
    paused.refresh_from_db()
    assert (queued.status, paused.status) == (Download.Status.QUEUED, Download.Status.PAUSED)


# --- the API --------------------------------------------------------------------------------------------------------


def test_pause_and_resume_for_scripts(client_for, admin_user, enqueued):
    client = client_for(admin_user)
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=10, bytes_done=5, attempts=1)
    response = client.post(api_url("pause", download.pk))
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["attempts"], response.json()["bytes_done"]) == ("paused", 0, 5)
    response = client.post(api_url("pause", download.pk))
    assert_error(response, 409, "conflict_error", code="not_pausable")
    assert response.json()["current"]["status"] == "paused"
    enqueued.clear()
    response = client.post(api_url("resume", download.pk))
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert enqueued == [str(download.pk)]
    response = client.post(api_url("resume", download.pk))
    assert_error(response, 409, "conflict_error", code="not_paused")
    assert response.json()["current"]["status"] == "queued"
    assert_error(client.post(api_url("pause", uuid.uuid4())), 404, "not_found_error", code="download_not_found")
    assert_error(client.get(api_url("pause", download.pk)), 405, "invalid_request_error")


def test_waiting_to_retry_reads_the_same_in_the_api(viewer_client):
    retry_at = timezone.now() + timedelta(seconds=20)
    download = make_download(status=Download.Status.DOWNLOADING, attempts=2, retry_at=retry_at,
                             error_code="network_error", error_message="Reset.")  # fmt: skip
    body = viewer_client.get(f"/api/modelfiles/status/{download.pk}").json()
    assert (body["status"], body["attempts"]) == ("downloading", 2)
    assert body["retry_at"] == retry_at.isoformat().replace("+00:00", "Z")


def test_pause_and_resume_are_documented(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for name, code in (("pause", "not_pausable"), ("resume", "not_paused")):
        operation = schema["paths"][f"/api/modelfiles/status/{{download_id}}/{name}"]["post"]
        assert operation["operationId"] == f"modelfiles_status_{name}"
        assert code in operation["description"]
        assert {"200", "401", "403", "404", "409"} <= set(operation["responses"])
    cancel = schema["paths"]["/api/modelfiles/status/{download_id}/cancel"]["post"]
    assert "partial file is deleted" in cancel["description"]
    download = schema["components"]["schemas"]["Download"]["properties"]
    assert "retry_at" in download and "paused" in str(schema["components"]["schemas"])


def test_no_partial_file_is_left_by_a_cancel_before_any_byte(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    download = request()
    assert services.download_cancel(download=download, by=None)
    assert services.download_run(download_id=download.pk, worker="test") is None  # the message finds it cancelled
    assert not list(RepoPaths.for_repo(REPO).blobs.glob(f"*{PARTIAL_SUFFIX}"))
