"""A worker asked to stop (SIGTERM, SIGINT) hands its downloads back within seconds instead of finishing them, and
the next worker resumes each from its partial file (issue 12, item 1)."""

from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest

from modelfiles.cache import local_file
from modelfiles.models import Download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random, sha256_of
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SIZE = 8_000_000
RATE = 1_000_000  # bytes a second: the pull would take 8 s more than the test waits


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopping_worker_hands_its_pull_back_and_the_next_one_resumes_it(hub, hf_env, client_for, operator, sig):
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=RATE, times=1)
    with celery_worker(extra_env=hf_env) as worker:
        response = client_for(operator).post(
            "/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json"
        )
        download_id = response.json()["id"]
        wait_for_download(download_id, lambda r: r.bytes_done >= 1_500_000)
        # What a process manager sends: the signal to the worker's main process.
        started = time.monotonic()
        os.kill(worker.pid, sig)
        worker.wait(timeout=30)
        stopped_in = time.monotonic() - started
        row = Download.objects.get(pk=download_id)
    print(f"worker stopped {stopped_in:.2f} s after {sig.name}")
    assert stopped_in < 10, f"the worker took {stopped_in:.1f} s to stop"
    # Celery's own exit codes: 0 after SIGTERM, 1 after Ctrl-C (it counts an interrupt as a failure).
    assert worker.returncode == (0 if sig == signal.SIGTERM else 1)
    # Handed back: queued, nobody's claim, the bytes kept and a note that says what happened.
    assert (row.status, row.claim) == (Download.Status.QUEUED, None)
    assert "Handed back by worker" in row.error_message and row.bytes_done >= 1_500_000
    kept = row.bytes_done

    with celery_worker(extra_env=hf_env):
        row = wait_for_download(download_id, lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    ranges = hub.range_requests(FILE)
    assert len(ranges) == 1 and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= kept - 1024 * 1024
    # Fetched twice: at most what was in flight when the transfer stopped.
    assert hub.bytes_sent_for(FILE) - SIZE <= 0.05 * SIZE
