"""/healthz and /readyz, and the worker heartbeats behind "at least one live worker"."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from config.health.models import WorkerHeartbeat
from config.health.selectors import workers_seen
from tests.workers import celery_worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker writes its heartbeat from another process


@pytest.fixture(autouse=True)
def cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return tmp_path / "hf_home"


def checks_of(response) -> dict[str, dict]:
    return {check["component"]: check for check in response.json()["checks"]}


def beat(name: str, *, seconds_ago: float, pid: int = 4242) -> WorkerHeartbeat:
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    return WorkerHeartbeat.objects.create(
        name=name, host="host-a", pid=pid, queues=["celery"], running=0, started_at=seen, last_seen=seen
    )


def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_503_naming_the_missing_worker_and_ready_once_one_beats(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    checks = checks_of(response)
    assert set(checks) == {"database", "broker", "cache", "workers"}
    assert [name for name, check in checks.items() if check["status"] == "down"] == ["workers"]
    assert "no live Celery worker" in checks["workers"]["detail"]

    beat("celery@host-a", seconds_ago=1)
    response = client.get("/readyz")
    assert (response.status_code, response.json()["status"]) == (200, "ready")
    assert checks_of(response)["workers"]["detail"].startswith("1 live")


def test_a_worker_silent_for_three_heartbeats_does_not_count(client, settings):
    settings.MODELDESK_WORKER_HEARTBEAT_SECONDS = 2
    beat("celery@gone", seconds_ago=7)
    assert [worker.silent for worker in workers_seen()] == [True]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "1 silent" in checks_of(response)["workers"]["detail"]


def test_readyz_says_which_part_is_down_and_shows_nothing_secret(client, settings, cache_home):
    beat("celery@host-a", seconds_ago=0)
    cache_home.mkdir(parents=True)
    (cache_home / "hub").write_text("a file where the cache folder should be")
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = checks_of(response)
    assert checks["cache"]["status"] == "down" and checks["database"]["status"] == "ok"
    text = json.dumps(response.json())
    assert str(cache_home) not in text and settings.SECRET_KEY not in text


def test_a_real_worker_beats_lists_itself_and_removes_its_row_on_a_clean_stop(client, settings, admin_user,
                                                                              client_for):  # fmt: skip
    with celery_worker(extra_env={"MODELDESK_WORKER_HEARTBEAT_SECONDS": "0.5"}) as worker:
        deadline = time.monotonic() + 20
        while not WorkerHeartbeat.objects.filter(name=worker.hostname).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        row = WorkerHeartbeat.objects.get(name=worker.hostname)
        assert row.pid == worker.pid and "celery" in row.queues
        first_seen = row.last_seen
        time.sleep(1.5)
        assert WorkerHeartbeat.objects.get(name=worker.hostname).last_seen > first_seen  # it keeps beating
        assert client.get("/readyz").status_code == 200
        dashboard = client_for(admin_user).get("/").content.decode()
        assert f'data-worker="{worker.hostname}"' in dashboard and "alive" in dashboard
    # Stopped with SIGTERM (a warm shutdown): its row is gone, so nobody waits for it.
    assert not WorkerHeartbeat.objects.filter(name=worker.hostname).exists()


def test_a_killed_worker_turns_silent_on_the_dashboard(client_for, admin_user, settings):
    settings.MODELDESK_WORKER_HEARTBEAT_SECONDS = 0.5
    with celery_worker(extra_env={"MODELDESK_WORKER_HEARTBEAT_SECONDS": "0.5"}) as worker:
        deadline = time.monotonic() + 20
        while not WorkerHeartbeat.objects.filter(name=worker.hostname).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        time.sleep(2)
        dashboard = client_for(admin_user).get("/").content.decode()
    assert WorkerHeartbeat.objects.filter(name=worker.hostname).exists()
    assert 'data-testid="worker-silent"' in dashboard
