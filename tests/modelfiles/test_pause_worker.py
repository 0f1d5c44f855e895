"""Pause, resume and cancel of pulls a real Celery worker process is doing, through the API, against a throttled
test Hub so the transfer is mid-way when the button is pressed."""

from __future__ import annotations

import hashlib
import time

import pytest

from modelfiles.cache import PARTIAL_SUFFIX, RepoPaths, local_file
from modelfiles.models import Download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random, sha256_of
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SIZE = 6_000_000


def pull(client) -> str:
    response = client.post("/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def steady_size(path, seconds: float = 1.5) -> int:
    """The file's size once it has not changed for `seconds` (nobody writes it any more)."""
    size, since = path.stat().st_size, time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.1)
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
    return size


def test_a_worker_pauses_within_seconds_and_resume_continues_the_partial_file(hub, hf_env, client_for, operator):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=1_500_000, times=1)
    client = client_for(operator)
    partial = RepoPaths.for_repo(REPO).partial(hashlib.sha256(content).hexdigest())
    with celery_worker(extra_env=hf_env):
        download_id = pull(client)
        wait_for_download(download_id, lambda row: row.bytes_done >= 1_000_000)
        response = client.post(f"/api/modelfiles/status/{download_id}/pause")
        assert response.status_code == 200 and response.json()["status"] == "paused"
        paused_at = time.monotonic()
        kept = steady_size(partial)
        # The transfer stopped within a couple of seconds of the pause (the file grew at most that long).
        assert time.monotonic() - paused_at < 2 + 1.5 + 0.5
        assert 1_000_000 <= kept < SIZE
        row = Download.objects.get(pk=download_id)
        assert (row.status, row.claim) == (Download.Status.PAUSED, None)

        response = client.post(f"/api/modelfiles/status/{download_id}/resume")
        assert response.status_code == 200 and response.json()["status"] == "queued"
        row = wait_for_download(download_id, lambda row: not row.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert row.verified == "sha256" and row.attempts == 1
    assert hub.range_requests(FILE) == [f"bytes={kept}-"]
    assert hub.bytes_sent_for(FILE) - SIZE <= 4 * 1024 * 1024  # at most what was in flight, fetched twice
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    assert not partial.exists()


def test_a_worker_stops_on_cancel_and_the_partial_file_is_deleted(hub, hf_env, client_for, operator):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=1_500_000, times=1)
    client = client_for(operator)
    blobs = RepoPaths.for_repo(REPO).blobs
    with celery_worker(extra_env=hf_env):
        download_id = pull(client)
        wait_for_download(download_id, lambda row: row.bytes_done >= 1_000_000)
        response = client.post(f"/api/modelfiles/status/{download_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        deadline = time.monotonic() + 3
        while list(blobs.glob(f"*{PARTIAL_SUFFIX}")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list(blobs.glob(f"*{PARTIAL_SUFFIX}"))
        sent = hub.bytes_sent_for(FILE)
        time.sleep(1.5)
        assert hub.bytes_sent_for(FILE) == sent  # the transfer is over, not only the row
        # A retry starts from the first byte, as nothing was kept.
        response = client.post(f"/api/modelfiles/status/{download_id}/retry")
        assert response.status_code == 200 and response.json()["bytes_done"] == 0
        row = wait_for_download(download_id, lambda row: not row.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert hub.range_requests(FILE) == []
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
