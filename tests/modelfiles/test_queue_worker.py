"""Queue order with a concurrency limit of one, worked by a real Celery worker process (two Celery processes, so the
limit and not the pool keeps the downloads one at a time), against the test Hub."""

from __future__ import annotations

from itertools import pairwise

import pytest

from modelfiles.models import Download
from tests.modelfiles.hubfixtures import REPO, hf_env, hub, pseudo_random
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BLOCKER = "blocker.Q4_K_M.gguf"


def pull(client, filename: str, **extra) -> str:
    response = client.post(
        "/api/modelfiles/pull", {"repo": REPO, "filename": filename, **extra}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_with_a_limit_of_one_the_queue_starts_in_priority_and_operator_order(hub, hf_env, client_for, operator):
    names = [f"q{index}.Q4_K_M.gguf" for index in range(4)]
    files = {BLOCKER: pseudo_random(20_000_000, seed=99)}
    files.update({name: pseudo_random(3000, seed=index) for index, name in enumerate(names)})
    hub.add_repo(REPO, files=files)
    # The first download holds the only slot, slowly, until it is paused.
    hub.faults.set(throttle_bytes_per_second=500_000, path=BLOCKER, times=1)
    client = client_for(operator)
    env = {**hf_env, "MODELDESK_MAX_CONCURRENT_DOWNLOADS": "1"}
    with celery_worker(extra_env=env, concurrency=2):
        blocker = pull(client, BLOCKER)
        wait_for_download(blocker, lambda row: row.bytes_done > 0)
        a, b, c = (pull(client, name) for name in names[:3])
        urgent = pull(client, names[3], priority="high")
        # The second Celery process took the messages of these and found no free slot: they stay queued.
        for download_id in (a, b, c, urgent):
            assert Download.objects.get(pk=download_id).status == Download.Status.QUEUED
        for download_id, to in ((c, "top"), (a, "down")):
            response = client.post(
                f"/api/modelfiles/status/{download_id}/move", {"to": to}, content_type="application/json"
            )
            assert response.status_code == 200, response.content
        # The order now: c (moved to the top, before urgent, so it took urgent's high priority), urgent (asked for
        # last, but high), then b and a (moved down past b).
        assert client.post(f"/api/modelfiles/status/{blocker}/pause").status_code == 200
        for download_id in (a, b, c, urgent):
            wait_for_download(download_id, lambda row: not row.is_active, seconds=90)
    rows = list(Download.objects.filter(pk__in=[a, b, c, urgent]).order_by("started_at"))
    label = {a: "a", b: "b", c: "c", urgent: "urgent"}
    assert [label[str(row.pk)] for row in rows] == ["c", "urgent", "b", "a"]
    assert rows[0].priority == Download.Priority.HIGH
    assert {row.status for row in rows} == {Download.Status.COMPLETED}
    for before, after in pairwise(rows):
        assert after.started_at >= before.finished_at  # one at a time
    assert Download.objects.get(pk=blocker).status == Download.Status.PAUSED


def test_a_worker_at_its_own_limit_leaves_the_next_download_to_another_worker(hub, hf_env, client_for, operator):
    hub.add_repo(REPO, files={BLOCKER: pseudo_random(20_000_000, seed=99), "next.Q4_K_M.gguf": pseudo_random(3000)})
    hub.faults.set(throttle_bytes_per_second=500_000, path=BLOCKER, times=1)
    client = client_for(operator)
    env = {**hf_env, "MODELDESK_WORKER_CONCURRENT_DOWNLOADS": "1"}
    with celery_worker(extra_env=env, concurrency=2) as first, celery_worker(extra_env=env, concurrency=2) as second:
        blocker = pull(client, BLOCKER)
        busy = wait_for_download(blocker, lambda row: row.bytes_done > 0).worker
        # Whichever worker's process takes its message, only the one without a download may start it (a full
        # worker passes the message on); no beat runs here, so nothing else would send it again.
        after = wait_for_download(pull(client, "next.Q4_K_M.gguf"), lambda row: not row.is_active, seconds=60)
        assert client.post(f"/api/modelfiles/status/{blocker}/pause").status_code == 200
    assert after.status == Download.Status.COMPLETED
    assert {busy, after.worker} == {first.hostname, second.hostname}
