"""No request is ever stranded: a broker outage, a killed `manage.py pull`.

Real components only: a `redis-server` of the test's own that is stopped and started again, a real Celery worker
(with its beat where the test says so), `manage.py pull` as a subprocess killed with SIGKILL, and the test Hub.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from modelfiles import services
from modelfiles.cache import local_file
from modelfiles.models import Download
from tests import workers
from tests.modelfiles import make_download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random, sha256_of
from tests.workers import BASE_DIR, celery_worker, redis_server, use_broker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PULL_API = "/api/modelfiles/pull"
OTHER_FILE = "tiny-llama.Q8_0.gguf"
# Short reconciler settings for the worker (and its beat) the tests start.
RECONCILE_ENV = {"MODELDESK_RECONCILE_GRACE_SECONDS": "2", "MODELDESK_RECONCILE_EVERY_SECONDS": "1"}


def active_section(client) -> str:
    page = client.get(reverse("modelfiles:downloads")).content.decode()
    return page[page.index('id="active-downloads"') : page.index("</section>")]


def pull_api(client, filename: str = FILE):
    return client.post(PULL_API, {"repo": REPO, "filename": filename}, content_type="application/json")


@pytest.fixture
def redis():
    """A Redis of this test's own, which this process's Celery app publishes to."""
    with redis_server() as server, use_broker(server.url):
        yield server


def queue_length(server) -> int:
    import redis as redis_py

    with redis_py.Redis(port=server.port) as client:
        return client.llen("celery")  # the default queue, a Redis list


def test_the_reconciler_sends_what_the_broker_never_took_or_lost_once_per_grace_period(redis):
    now = timezone.now()
    never = make_download()
    long_ago = make_download(enqueued_at=now - timedelta(seconds=60))
    recent = make_download(enqueued_at=now - timedelta(seconds=1))
    running = make_download(status=Download.Status.DOWNLOADING)
    failed = make_download(status=Download.Status.FAILED)

    assert services.download_reconcile(grace=30) == 2
    assert queue_length(redis) == 2
    sent = {row.pk: row.enqueued_at for row in Download.objects.all()}
    assert sent[never.pk] >= now and sent[long_ago.pk] >= now
    assert sent[recent.pk] == recent.enqueued_at and sent[running.pk] is None and sent[failed.pk] is None
    # Run again at once: nothing is due, so the queue does not fill with duplicates.
    assert services.download_reconcile(grace=30) == 0
    assert queue_length(redis) == 2


def test_the_reconciler_gives_up_quickly_while_the_broker_is_down(redis):
    rows = [make_download() for _ in range(5)]
    redis.stop()
    started = time.monotonic()
    assert services.download_reconcile(grace=30) == 0
    assert time.monotonic() - started < 3  # one failed publish, not one timeout per row
    assert all(row.waiting_for_worker for row in Download.objects.filter(pk__in=[r.pk for r in rows]))


def test_a_broker_that_accepts_connections_but_never_answers_holds_a_publish_only_briefly(tmp_path):
    """The configured bounds (settings with CELERY_BROKER_URL=redis://...): Celery alone would wait forever."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshakes; nobody ever reads or answers
    try:
        code = (
            "import time; from modelfiles import services; started = time.monotonic(); "
            "sent = services.download_publish(download_id='00000000-0000-0000-0000-000000000000'); "
            "print(sent, f'{time.monotonic() - started:.2f}')"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=BASE_DIR,
            env={
                **os.environ,
                "CELERY_BROKER_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
                "MODELDESK_VAR_DIR": str(tmp_path / "var"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        silent.close()
    sent, seconds = result.stdout.split()[-2:]
    assert sent == "False", result.stderr
    print(f"\nsilent broker: publish gave up after {seconds} s")
    assert float(seconds) < 3


def test_a_retry_or_stale_requeue_the_broker_missed_shows_the_note_again(redis, client_for, operator):
    failed = make_download(status=Download.Status.FAILED, enqueued_at=timezone.now())
    stale = make_download(status=Download.Status.DOWNLOADING, enqueued_at=timezone.now(), worker="manage.py pull")
    Download.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(seconds=600))
    redis.stop()
    retried, requeued = services.download_retry(download=failed, by=None)
    assert requeued and retried.waiting_for_worker
    assert services.download_requeue_stale(older_than=60) == 1
    stale.refresh_from_db()
    assert stale.status == Download.Status.QUEUED and stale.waiting_for_worker
    client = client_for(operator)
    assert active_section(client).count('data-note="waiting_for_worker"') == 2
    # Said once per download: the active ones are not in the history table as well.
    page = client.get(reverse("modelfiles:downloads")).content.decode()
    assert page.count('data-note="waiting_for_worker"') == 2


def test_a_pull_asked_for_while_the_broker_is_down_is_answered_and_done_once_it_is_back(
    hub, hf_env, client_for, operator
):
    content, other = pseudo_random(2_000_000), pseudo_random(1_000_000, seed=8)
    hub.add_repo(REPO, files={FILE: content, OTHER_FILE: other})
    client = client_for(operator)
    with (
        redis_server() as redis,
        use_broker(redis.url),
        celery_worker(extra_env={**hf_env, **RECONCILE_ENV}, broker_url=redis.url, beat=True),
    ):
        redis.stop()

        started = time.monotonic()
        response = pull_api(client)
        answered = time.monotonic() - started
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["status"] == "queued"
        assert body["note"]["code"] == "waiting_for_worker" and "Waiting for a worker" in body["note"]["message"]
        assert answered < 3, f"the pull took {answered:.2f} s to answer with the broker down"
        download_id = body["id"]

        # Asked again: the same download, still answered at once, not a second row.
        again = pull_api(client)
        assert again.status_code == 200 and again.json()["id"] == download_id
        assert again.json()["note"]["code"] == "waiting_for_worker"

        # The pull page answers too: a redirect with the note in its message.
        started = time.monotonic()
        page = client.post(reverse("modelfiles:pull"), {"repo": REPO, "filename": OTHER_FILE, "revision": "main"})
        page_answered = time.monotonic() - started
        assert page.status_code == 302 and page_answered < 3
        followed = client.get(page["Location"]).content.decode()
        assert f"Queued {REPO}/{OTHER_FILE}@main. Waiting for a worker" in followed
        section = active_section(client)
        assert section.count('data-note="waiting_for_worker"') == 2
        assert client.get(f"/api/modelfiles/status/{download_id}").json()["note"]["code"] == "waiting_for_worker"

        # Nothing moves while the broker is away (the beat's reconciler cannot reach it either).
        time.sleep(2)
        assert Download.objects.filter(status=Download.Status.QUEUED).count() == 2

        redis.start()
        back = time.monotonic()
        row = wait_for_download(download_id, lambda r: not r.is_active, seconds=90)
        took = time.monotonic() - back
        other_row = wait_for_download(Download.objects.get(filename=OTHER_FILE).pk, lambda r: not r.is_active, 60)
        print(f"\nbroker down: API answered in {answered:.3f} s, page in {page_answered:.3f} s; "
              f"completed {took:.1f} s after the broker came back")  # fmt: skip

    assert row.status == Download.Status.COMPLETED, row.error_message
    assert other_row.status == Download.Status.COMPLETED, other_row.error_message
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    assert sha256_of(local_file(REPO, OTHER_FILE, "main")) == hashlib.sha256(other).hexdigest()
    assert client.get(f"/api/modelfiles/status/{download_id}").json()["note"] is None
    assert 'data-note="waiting_for_worker"' not in active_section(client)


def test_a_worker_starting_after_an_outage_sends_what_was_queued_meanwhile(hub, hf_env, client_for, operator):
    """No beat here: the worker's start-up housekeeping alone picks the stranded pull up."""
    content = pseudo_random(1_500_000)
    hub.add_repo(REPO, files={FILE: content})
    with redis_server() as redis, use_broker(redis.url):
        redis.stop()
        response = pull_api(client_for(operator))
        assert response.status_code == 201 and response.json()["note"]["code"] == "waiting_for_worker"
        redis.start()
        with celery_worker(extra_env={**hf_env, **RECONCILE_ENV}, broker_url=redis.url):
            row = wait_for_download(response.json()["id"], lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()


# --- a `manage.py pull` killed hard ----------------------------------------------------------------------------------

SIZE = 6_000_000


def start_pull(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "pull", REPO, FILE],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def cli_env(hf_env, tmp_path) -> dict[str, str]:
    """What `manage.py pull` runs with: the test database, the test Hub, and an on-disk broker of its own (the
    task it also queues must not reach the workers of other tests)."""
    return {
        **os.environ,
        **hf_env,
        "DATABASE_URL": workers.test_database_url(),
        "MODELDESK_VAR_DIR": str(tmp_path / "cli-var"),
        "CELERY_BROKER_URL": "filesystem://",
        "PYTHONUNBUFFERED": "1",
    }


def kill_pull_mid_transfer(hub, cli_env) -> tuple[Download, bytes]:
    content = pseudo_random(SIZE)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=1_000_000, times=1)
    process = start_pull(cli_env)
    try:
        row = wait_for_row_appearing(lambda r: r.bytes_done >= 1_500_000)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    row.refresh_from_db()
    assert row.status == Download.Status.DOWNLOADING and row.worker == "manage.py pull" and row.bytes_done < SIZE
    return row, content


def wait_for_row_appearing(predicate, seconds: float = 60.0) -> Download:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = Download.objects.filter(repo=REPO, filename=FILE).first()
        if row is not None and predicate(row):
            return row
        time.sleep(0.05)
    raise AssertionError("the pull never got that far")


def fetched_twice(hub) -> int:
    return hub.bytes_sent_for(FILE) - SIZE


def test_the_next_pull_takes_over_a_pull_killed_hard_and_resumes_its_partial_file(hub, cli_env):
    row, content = kill_pull_mid_transfer(hub, cli_env)

    # While the heartbeat is recent (by the setting), the row is someone's: refused, and told when it is not.
    refused = subprocess.run(
        [sys.executable, "manage.py", "pull", REPO, FILE],
        cwd=BASE_DIR,
        env={**cli_env, "MODELDESK_STALE_SECONDS": "600"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "already downloading" in refused.stderr and "600 s" in refused.stderr

    time.sleep(1.5)  # older than the 1 s stale setting below
    done = subprocess.run(
        [sys.executable, "manage.py", "pull", REPO, FILE],
        cwd=BASE_DIR,
        env={**cli_env, "MODELDESK_STALE_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Taking over the download left by manage.py pull" in done.stdout
    row.refresh_from_db()
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert Download.objects.count() == 1
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    ranges = hub.range_requests(FILE)
    assert len(ranges) == 1 and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= 1_500_000
    twice = fetched_twice(hub)
    print(f"\nCLI take-over: {twice} bytes fetched twice of {SIZE}")
    assert twice <= 1024 * 1024


def test_a_pull_killed_hard_is_resumed_by_a_worker_through_the_stale_heartbeat_job(hub, hf_env, cli_env):
    row, content = kill_pull_mid_transfer(hub, cli_env)
    env = {**hf_env, "MODELDESK_STALE_SECONDS": "2", "MODELDESK_REQUEUE_EVERY_SECONDS": "1"}
    with celery_worker(extra_env=env, beat=True) as worker:
        row = wait_for_download(row.pk, lambda r: not r.is_active)
    assert row.status == Download.Status.COMPLETED, row.error_message
    assert row.worker == worker.hostname
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    ranges = hub.range_requests(FILE)
    assert len(ranges) == 1 and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= 1_500_000
    twice = fetched_twice(hub)
    print(f"\nworker take-over: {twice} bytes fetched twice of {SIZE}")
    assert twice <= 1024 * 1024
