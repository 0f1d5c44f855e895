"""Pulls done by a real Celery worker process on the configured broker (Redis in CI), against the test Hub."""

from __future__ import annotations

import hashlib
import os
import signal

import pytest

from modelfiles.cache import local_file
from modelfiles.models import Download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random, sha256_of
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_pull_requested_through_the_api_is_done_by_a_worker(hub, hf_env, client_for, operator):
    content = pseudo_random(2_000_000)
    hub.add_repo(REPO, files={FILE: content})
    with celery_worker(extra_env=hf_env):
        response = client_for(operator).post(
            "/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json"
        )
        assert response.status_code == 201, response.content
        row = wait_for_download(response.json()["id"], lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    status = client_for(operator).get(f"/api/modelfiles/status/{row.pk}").json()
    assert (status["status"], status["bytes_done"], status["percent"]) == ("completed", 2_000_000, 100.0)


def test_a_worker_killed_mid_download_resumes_with_a_range_request_after_restart(hub, hf_env, client_for, operator):
    size = 6_000_000
    content = pseudo_random(size)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=2_000_000, times=1)
    name = f"kill-test-{os.getpid()}@localhost"
    with celery_worker(extra_env=hf_env, hostname=name) as worker:
        response = client_for(operator).post(
            "/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json"
        )
        download_id = response.json()["id"]
        wait_for_download(download_id, lambda r: r.bytes_done >= 1_000_000)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    row = Download.objects.get(pk=download_id)
    assert row.status == Download.Status.DOWNLOADING and row.bytes_done < size

    # The same worker comes back: it takes back what it held and continues from the partial file.
    with celery_worker(extra_env=hf_env, hostname=name):
        row = wait_for_download(download_id, lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    ranges = hub.range_requests(FILE)
    assert len(ranges) == 1 and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= 1_000_000
    # Bytes fetched twice: at most what was in flight when the worker died.
    assert hub.bytes_sent_for(FILE) - size <= 0.05 * size + 4 * 1024 * 1024
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()


def test_a_download_whose_worker_vanished_is_resumed_by_another_worker(hub, hf_env, client_for, operator):
    """The periodic job (beat) notices the stopped heartbeat and hands the download to a live worker."""
    size = 4_000_000
    content = pseudo_random(size)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=2_000_000, times=1)
    env = {**hf_env, "MODELDESK_STALE_SECONDS": "3", "MODELDESK_REQUEUE_EVERY_SECONDS": "1"}
    with celery_worker(extra_env=env) as worker:
        response = client_for(operator).post(
            "/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json"
        )
        download_id = response.json()["id"]
        wait_for_download(download_id, lambda r: r.bytes_done > 0)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    with celery_worker(extra_env=env, beat=True):
        row = wait_for_download(download_id, lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert hub.range_requests(FILE)
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
