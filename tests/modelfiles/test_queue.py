"""Queue order and limits (issue 11, item 3): priority, the operators' order, the concurrency limits, the
bandwidth limits and `download_speed_limit`, run in this process; a real worker working the queue with a limit of
one is in test_queue_worker.py."""

from __future__ import annotations

import threading
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from config.formatting import MB
from modelfiles import services
from modelfiles.models import Download, DownloadLimits
from tests.api_errors import assert_error
from tests.modelfiles import make_download
from tests.modelfiles.hubfixtures import REPO, hf_env, hub, pseudo_random

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

DOWNLOADS_URL = reverse("modelfiles:downloads")
HIGH, NORMAL, LOW = Download.Priority.HIGH, Download.Priority.NORMAL, Download.Priority.LOW


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[str]:
    """The tests run the task body themselves; record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    monkeypatch.setattr(download_task, "apply_async", lambda args, **options: sent.append(args[0]))
    return sent


def queue_order() -> list:
    """The waiting downloads' ids in the order they start in."""
    rows = Download.objects.filter(status__in=Download.WAITING).order_by(*Download.QUEUE_ORDER)
    return list(rows.values_list("pk", flat=True))


def claim_next(worker: str = "w1"):
    return services._claim_next(hosts=[""], worker=worker)


def active_section(client) -> str:
    page = client.get(DOWNLOADS_URL).content.decode()
    return page[page.index('id="active-downloads"') : page.index("</section>")]


# --- the order --------------------------------------------------------------------------------------------------------


def test_queued_downloads_start_by_priority_then_the_operators_order_then_request_time():
    low = make_download(priority=LOW)
    first, second = make_download(), make_download()
    high = make_download(priority=HIGH)
    moved = make_download(position=1)  # placed by an operator: ahead of the normal ones not moved
    assert queue_order() == [high.pk, moved.pk, first.pk, second.pk, low.pk]
    started = [claim_next()[0] for _ in range(5)]
    assert started == [high.pk, moved.pk, first.pk, second.pk, low.pk]
    assert claim_next() == (None, None, services.NOTHING_QUEUED)


def test_moves_reorder_the_queue_and_number_it():
    a, b, c = make_download(), make_download(), make_download()
    assert services.download_move(download=c, to="top", by=None)
    assert queue_order() == [c.pk, a.pk, b.pk]
    assert services.download_move(download=a, to="down", by=None)
    assert queue_order() == [c.pk, b.pk, a.pk]
    assert services.download_move(download=b, to="up", by=None)
    assert queue_order() == [b.pk, c.pk, a.pk]
    assert [row.position for row in Download.objects.order_by("position")] == [1, 2, 3]
    # Already first or last: nothing moves, and that is not a refusal.
    assert services.download_move(download=b, to="up", by=None)
    assert services.download_move(download=a, to="down", by=None)
    assert queue_order() == [b.pk, c.pk, a.pk]
    # A download asked for later comes after the ones placed by hand.
    later = make_download()
    assert queue_order() == [b.pk, c.pk, a.pk, later.pk]


def test_a_download_moved_past_another_priority_takes_it_so_it_stands_where_it_was_put():
    high = make_download(priority=HIGH)
    normal = make_download()
    low = make_download(priority=LOW)
    assert services.download_move(download=low, to="top", by=None)
    low.refresh_from_db()
    assert queue_order() == [low.pk, high.pk, normal.pk] and low.priority == HIGH
    assert services.download_move(download=high, to="down", by=None)
    high.refresh_from_db()
    assert queue_order() == [low.pk, normal.pk, high.pk] and high.priority == NORMAL


def test_paused_downloads_keep_their_places_and_can_be_moved_too():
    first = make_download()
    paused = make_download(status=Download.Status.PAUSED)
    last = make_download()
    assert services.download_move(download=paused, to="top", by=None)
    assert queue_order() == [paused.pk, first.pk, last.pk]
    # Up and down step over queued downloads: the paused one in between keeps its place before `first`.
    assert services.download_move(download=last, to="up", by=None)
    assert queue_order() == [paused.pk, last.pk, first.pk]
    assert services.download_resume(download=paused, by=None)
    assert claim_next()[0] == paused.pk


def test_only_queued_or_paused_downloads_move_and_bad_moves_are_refused():
    running = make_download(status=Download.Status.DOWNLOADING)
    done = make_download(status=Download.Status.COMPLETED)
    for download in (running, done):
        assert not services.download_move(download=download, to="top", by=None)
    with pytest.raises(services.ValidationError):
        services.download_move(download=make_download(), to="sideways", by=None)


def test_a_retried_download_goes_to_the_end_of_its_priority():
    failed = make_download(status=Download.Status.FAILED, position=1, error_code="network_error")
    waiting = make_download(position=2)
    services.download_retry(download=failed, by=None)
    assert queue_order() == [waiting.pk, failed.pk]


def test_moves_are_audited(operator):
    a, b = make_download(), make_download()
    services.download_move(download=b, to="top", by=operator)
    from config.audit.models import AuditEntry

    entry = AuditEntry.objects.get(action="move")
    assert entry.object_id == str(b.pk) and entry.after["to"] == "top" and entry.after["position"] == 1
    assert a.pk  # the other was renumbered, not audited on its own


# --- concurrency limits -----------------------------------------------------------------------------------------------


def test_the_global_limit_keeps_downloads_queued_until_a_slot_frees(settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 2
    running = make_download(status=Download.Status.DOWNLOADING, worker="w2")
    first, second = make_download(), make_download()
    assert claim_next()[0] == first.pk
    assert claim_next() == (None, None, services.GLOBAL_LIMIT)
    Download.objects.filter(pk=running.pk).update(status=Download.Status.COMPLETED)
    assert claim_next()[0] == second.pk


def test_the_per_worker_limit_counts_that_workers_downloads_only(settings):
    settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS = 1
    make_download(status=Download.Status.DOWNLOADING, worker="w1")
    queued = make_download()
    assert claim_next("w1") == (None, None, services.WORKER_LIMIT)
    assert claim_next("w2")[0] == queued.pk


def test_a_paused_or_waiting_to_retry_download_counts_as_it_should(settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 1
    # Waiting to retry, the worker still holds it (and its slot); paused, it holds none.
    holder = make_download(status=Download.Status.DOWNLOADING, retry_at=timezone.now() + timedelta(seconds=5))
    make_download(status=Download.Status.PAUSED)
    queued = make_download()
    assert claim_next()[1] is None
    services.download_pause(download=holder, by=None)
    assert claim_next()[0] == queued.pk


def test_workers_racing_for_the_last_slots_never_exceed_the_limit(settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 2
    for _ in range(6):
        make_download()
    barrier = threading.Barrier(6)
    claimed: list = []

    def worker(name: str) -> None:
        try:
            barrier.wait()
            claimed.append(claim_next(name)[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f"w{number}",)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([pk for pk in claimed if pk is not None]) == 2
    assert Download.objects.filter(status=Download.Status.DOWNLOADING).count() == 2


def seen_worker(name: str, queues: list[str], *, silent: bool = False) -> None:
    from config.health.models import WorkerHeartbeat

    now = timezone.now() - (timedelta(hours=1) if silent else timedelta())
    WorkerHeartbeat.objects.create(name=name, host="h", pid=1, queues=queues, started_at=now, last_seen=now)


@pytest.fixture
def passed_on(monkeypatch) -> list[tuple]:
    """The messages a full worker sends on: (args, kwargs, options)."""
    from modelfiles.tasks import download_task

    sent: list[tuple] = []
    monkeypatch.setattr(
        download_task, "apply_async", lambda args, kwargs=None, **options: sent.append((args, kwargs, options))
    )
    return sent


def test_a_full_worker_passes_the_message_on_when_another_worker_has_a_free_slot(settings, passed_on):
    settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS = 1
    make_download(status=Download.Status.DOWNLOADING, worker="w1")
    queued = make_download()
    seen_worker("w1", ["celery"])
    seen_worker("w2", ["celery"])
    assert services.download_run_next(download_id=queued.pk, worker="w1") is None
    assert passed_on == [((str(queued.pk),), {"hops": 1}, {})]
    queued.refresh_from_db()
    assert queued.status == Download.Status.QUEUED
    # Passed on often enough, it is dropped (the reconciler sends it later).
    services.download_run_next(download_id=queued.pk, worker="w1", hops=services.PASS_ON_HOPS)
    assert len(passed_on) == 1


def test_a_full_worker_drops_the_message_when_no_other_worker_could_run_it(settings, passed_on):
    settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS = 1
    make_download(status=Download.Status.DOWNLOADING, worker="w1")
    make_download(status=Download.Status.DOWNLOADING, worker="w2")
    queued = make_download()
    seen_worker("w2", ["celery"])  # full too
    seen_worker("w3", ["celery"], silent=True)  # gone
    seen_worker("w4", ["host.elsewhere"])  # takes another queue
    assert services.download_run_next(download_id=queued.pk, worker="w1") is None
    assert passed_on == []


def test_a_worker_whose_download_ends_starts_the_next_queued_one(hub, hf_env, settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 1
    files = {f"q{index}.Q4_K_M.gguf": pseudo_random(2000, seed=index) for index in range(3)}
    hub.add_repo(REPO, files=files)
    rows = [services.download_request(repo=REPO, filename=name, by=None)[0] for name in files]
    services.download_move(download=rows[2], to="top", by=None)
    # One message runs the whole queue, one download at a time, in its order.
    assert services.download_run_next(download_id=rows[0].pk, worker="w1").pk == rows[1].pk
    done = list(Download.objects.order_by("started_at"))
    assert [row.pk for row in done] == [rows[2].pk, rows[0].pk, rows[1].pk]
    assert {row.status for row in done} == {Download.Status.COMPLETED}
    for before, after in pairwise(done):
        assert after.started_at >= before.finished_at  # never two at once


def test_a_worker_asked_to_stop_takes_nothing_after_the_download_it_ran(hub, hf_env):
    files = {f"s{index}.Q4_K_M.gguf": pseudo_random(2000, seed=10 + index) for index in range(3)}
    hub.add_repo(REPO, files=files)
    rows = [services.download_request(repo=REPO, filename=name, by=None)[0] for name in files]
    asked: list[bool] = []

    def stopping() -> bool:
        asked.append(True)
        return True  # the stop came while the first download was running

    assert services.download_run_next(download_id=rows[0].pk, worker="w1", stopping=stopping).pk == rows[0].pk
    statuses = dict(Download.objects.values_list("pk", "status"))
    assert [statuses[row.pk] for row in rows] == ["completed", "queued", "queued"]
    assert asked == [True]  # asked once, after the first download and before taking another


def test_the_stop_reaches_the_pool_through_a_marker_the_next_start_clears(settings, tmp_path):
    from modelfiles import tasks

    settings.VAR_DIR = tmp_path
    marker = tasks._stopping_marker("celery@gpu-1")
    tasks._on_worker_shutting_down(sender="celery@gpu-1")
    assert marker.exists()  # what download_task's loop looks at before taking the next download
    tasks._on_worker_ready(sender=type("Worker", (), {"hostname": "celery@gpu-1"})())
    assert not marker.exists()


# --- bandwidth limits -------------------------------------------------------------------------------------------------


def running(**fields) -> Download:
    return make_download(status=Download.Status.DOWNLOADING, **fields)


def set_global(value: int | None) -> None:
    services.download_limits_set(max_speed=value, by=None)


def test_no_limit_anywhere_is_none():
    assert services.download_speed_limit(running().pk) is None


def test_its_own_limit_alone():
    assert services.download_speed_limit(running(max_speed=5_000_000).pk) == 5_000_000


def test_the_global_limit_is_shared_among_the_running_downloads():
    set_global(12_000_000)
    one = running()
    assert services.download_speed_limit(one.pk) == 12_000_000
    running(), running()
    assert services.download_speed_limit(one.pk) == 4_000_000
    # Queued, paused, verifying and waiting-to-retry downloads move no bytes: they take no share.
    make_download(), make_download(status=Download.Status.PAUSED), make_download(status=Download.Status.VERIFYING)
    running(retry_at=timezone.now() + timedelta(seconds=3))
    assert services.download_speed_limit(one.pk) == 4_000_000


def test_a_download_held_below_its_share_leaves_the_rest_to_the_others():
    set_global(10_000_000)
    slow = running(max_speed=2_000_000)
    fast = running()
    assert services.download_speed_limit(slow.pk) == 2_000_000
    assert services.download_speed_limit(fast.pk) == 8_000_000
    # Its own limit is the lower one: it wins.
    capped = running(max_speed=1_000_000)
    assert services.download_speed_limit(capped.pk) == 1_000_000
    assert services.download_speed_limit(fast.pk) == 7_000_000


def test_a_download_not_yet_running_is_counted_as_one_of_the_sharers():
    set_global(9_000_000)
    running(), running()
    starting = make_download()  # asks just before its row says downloading
    assert services.download_speed_limit(starting.pk) == 3_000_000


def test_the_environment_gives_the_global_limit_until_someone_changes_it(settings):
    settings.MODELDESK_MAX_DOWNLOAD_SPEED = 6_000_000
    download = running()
    assert services.download_speed_limit(download.pk) == 6_000_000
    set_global(None)  # "no limit", set on the page, holds over the setting
    assert services.download_speed_limit(download.pk) is None
    assert DownloadLimits.objects.get().changed


def test_a_limit_changed_while_it_runs_applies_at_the_next_ask():
    download = running()
    assert services.download_speed_limit(download.pk) is None
    assert services.download_speed_set(download=download, max_speed=3_000_000, by=None)
    assert services.download_speed_limit(download.pk) == 3_000_000
    set_global(1_000_000)
    assert services.download_speed_limit(download.pk) == 1_000_000


def test_the_speed_limit_costs_two_queries(django_assert_max_num_queries):
    set_global(10_000_000)
    download = running()
    for _ in range(5):
        running(max_speed=1_000_000)
    with django_assert_max_num_queries(2):
        assert services.download_speed_limit(download.pk) == 5_000_000


def test_unknown_downloads_have_no_limit():
    assert services.download_speed_limit("not-a-uuid") is None
    assert services.download_speed_limit("00000000-0000-0000-0000-000000000000") is None


def test_limits_out_of_range_are_refused():
    for value in (0, 9_999, 10**13):
        with pytest.raises(services.ValidationError):
            set_global(value)
        with pytest.raises(services.ValidationError):
            services.download_speed_set(download=running(), max_speed=value, by=None)


def test_a_finished_download_has_no_speed_to_limit():
    done = make_download(status=Download.Status.COMPLETED)
    assert not services.download_speed_set(download=done, max_speed=1_000_000, by=None)


# --- the API ----------------------------------------------------------------------------------------------------------


def test_pull_api_takes_a_priority_and_a_speed_limit(hub, hf_env, operator_client):
    hub.add_repo(REPO, files={"a.Q4_K_M.gguf": pseudo_random(1000), "b.Q4_K_M.gguf": pseudo_random(1000, seed=2)})
    first = operator_client.post(
        "/api/modelfiles/pull", {"repo": REPO, "filename": "a.Q4_K_M.gguf"}, content_type="application/json"
    ).json()
    response = operator_client.post(
        "/api/modelfiles/pull",
        {"repo": REPO, "filename": "b.Q4_K_M.gguf", "priority": "high", "max_speed": 2_000_000},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["priority"], body["max_speed"], body["position"]) == ("high", 2_000_000, None)
    assert first["priority"] == "normal" and first["max_speed"] is None
    assert queue_order()[0] == Download.objects.get(pk=body["id"]).pk


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"priority": 1}, "priority"),
        ({"max_speed": 5}, "max_speed"),
        ({"max_speed": "5000000"}, "max_speed"),
    ],
)
def test_pull_api_refuses_a_bad_priority_or_speed(operator_client, body, param):
    response = operator_client.post(
        "/api/modelfiles/pull", {"repo": REPO, "filename": "a.Q4_K_M.gguf", **body}, content_type="application/json"
    )
    assert_error(response, 400, "invalid_request_error", param=param)
    assert not Download.objects.exists()


def move(client, download_id, to: str):
    return client.post(f"/api/modelfiles/status/{download_id}/move", {"to": to}, content_type="application/json")


def test_move_api(operator_client):
    a, b = make_download(), make_download(priority=LOW)
    response = move(operator_client, b.pk, "top")
    assert response.status_code == 200, response.content
    assert (response.json()["position"], response.json()["priority"]) == (1, "normal")
    assert queue_order() == [b.pk, a.pk]
    assert_error(move(operator_client, b.pk, "bottom"), 400, "invalid_request_error", param="to")
    done = make_download(status=Download.Status.COMPLETED)
    error = assert_error(move(operator_client, done.pk, "up"), 409, "conflict_error", code="not_waiting")
    assert "completed" in error["message"]
    assert_error(move(operator_client, "nope", "up"), 404, "not_found_error")


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_operators_and_admins_move_or_limit(request, client_for, role):
    client = client_for(request.getfixturevalue(role))
    download = make_download()
    assert_error(move(client, download.pk, "top"), 403, "forbidden_error")
    speed = client.post(
        f"/api/modelfiles/status/{download.pk}/speed", {"max_speed": 2_000_000}, content_type="application/json"
    )
    assert_error(speed, 403, "forbidden_error")
    limits = client.put("/api/modelfiles/limits", {"max_speed": 2_000_000}, content_type="application/json")
    assert_error(limits, 403, "forbidden_error")
    assert client.get("/api/modelfiles/limits").status_code == 200  # reading is for everyone
    for name, data in (("download-move", {"to": "top"}), ("download-speed", {"max_speed": "2"})):
        assert client.post(reverse(f"modelfiles:{name}", args=[download.pk]), data).status_code == 403
    assert client.post(reverse("modelfiles:download-limits"), {"max_speed": "2"}).status_code == 403
    download.refresh_from_db()
    assert (download.position, download.max_speed) == (None, None)
    assert not DownloadLimits.objects.filter(changed=True).exists()


def test_speed_api(operator_client):
    download = running()
    url = f"/api/modelfiles/status/{download.pk}/speed"
    response = operator_client.post(url, {"max_speed": 3_000_000}, content_type="application/json")
    assert response.status_code == 200 and response.json()["max_speed"] == 3_000_000
    response = operator_client.post(url, {"max_speed": None}, content_type="application/json")
    assert response.status_code == 200 and response.json()["max_speed"] is None
    assert_error(operator_client.post(url, {}, content_type="application/json"), 400, "invalid_request_error")
    low = operator_client.post(url, {"max_speed": 10}, content_type="application/json")
    assert_error(low, 400, "invalid_request_error", param="max_speed")
    done = make_download(status=Download.Status.FAILED)
    late = operator_client.post(
        f"/api/modelfiles/status/{done.pk}/speed", {"max_speed": 3_000_000}, content_type="application/json"
    )
    assert_error(late, 409, "conflict_error", code="not_active")


def test_limits_api(operator_client, settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 4
    settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS = 2
    settings.MODELDESK_MAX_DOWNLOAD_SPEED = 50_000_000
    running(), make_download()
    body = operator_client.get("/api/modelfiles/limits").json()
    assert body == {
        "max_concurrent": 4, "worker_concurrent": 2, "max_speed": 50_000_000, "max_speed_from_env": True,
        "running": 1, "queued": 1, "updated_at": None, "updated_by": None,
    }  # fmt: skip
    response = operator_client.put("/api/modelfiles/limits", {"max_speed": 20_000_000}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["max_speed"], body["max_speed_from_env"], body["updated_by"]) == (20_000_000, False, "otto-operator")
    cleared = operator_client.put("/api/modelfiles/limits", {"max_speed": None}, content_type="application/json")
    assert cleared.json()["max_speed"] is None
    bad = operator_client.put("/api/modelfiles/limits", {"max_speed": 1.5}, content_type="application/json")
    assert_error(bad, 400, "invalid_request_error", param="max_speed")


# --- the page ---------------------------------------------------------------------------------------------------------


def test_queued_rows_show_their_place_in_the_new_order_and_their_priority(viewer_client):
    a = make_download()
    b = make_download(priority=HIGH)
    section = active_section(viewer_client)
    assert section.index(f'data-download="{b.pk}"') < section.index(f'data-download="{a.pk}"')
    card_b = section[section.index(f'data-download="{b.pk}"') :]
    assert "place 1 in the queue" in card_b[:3000] and "high priority" in card_b[:3000]
    assert "place 2 in the queue" in section[section.index(f'data-download="{a.pk}"') :]


def test_operators_get_move_and_speed_buttons_on_waiting_downloads(operator_client, viewer_client):
    queued = make_download()
    paused = make_download(status=Download.Status.PAUSED)
    busy = running(max_speed=2 * MB)
    section = active_section(operator_client)
    for download in (queued, paused):
        assert f'id="move-top-{download.pk.hex}"' in section and f'id="move-down-{download.pk.hex}"' in section
    assert f"move-top-{busy.pk.hex}" not in section
    assert reverse("modelfiles:download-speed", args=[busy.pk]) in section
    assert "limit 2.0 MB/s" in section
    viewer = active_section(viewer_client)
    assert "move-top-" not in viewer and "download-speed" not in viewer and 'data-field="speed-link"' not in viewer
    assert "limit 2.0 MB/s" in viewer  # everyone reads the limit


def test_the_move_buttons_reorder_and_say_so(operator_client):
    a, b = make_download(), make_download()
    response = operator_client.post(
        reverse("modelfiles:download-move", args=[b.pk]), {"to": "top", "next": DOWNLOADS_URL + "?sort=repo"}
    )
    assert response.status_code == 302 and response["Location"] == DOWNLOADS_URL + "?sort=repo"
    assert queue_order() == [b.pk, a.pk]
    page = operator_client.get(DOWNLOADS_URL).content.decode()
    assert "to the top of the queue (priority normal)" in page
    done = make_download(status=Download.Status.COMPLETED)
    operator_client.post(reverse("modelfiles:download-move", args=[done.pk]), {"to": "up"})
    assert "only queued or paused downloads can be moved" in operator_client.get(DOWNLOADS_URL).content.decode()


def test_the_page_shows_the_limits(viewer_client, settings):
    settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS = 3
    settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS = 1
    page = viewer_client.get(DOWNLOADS_URL).content.decode()
    panel = page[page.index('data-testid="download-limits"') :]
    assert "At once: <strong>3</strong>" in panel and "Per worker: <strong>1</strong>" in panel
    assert "Bandwidth: <strong>no limit</strong>" in panel
    assert 'data-testid="global-speed-form"' not in panel  # viewers read it only


def test_operators_set_the_global_speed_limit_on_the_page(operator_client):
    response = operator_client.post(reverse("modelfiles:download-limits"), {"max_speed": "20", "next": DOWNLOADS_URL})
    assert response.status_code == 302
    assert DownloadLimits.objects.get().max_speed == 20 * MB
    page = operator_client.get(DOWNLOADS_URL).content.decode()
    assert "Downloads now share at most 20.0 MB/s." in page
    assert "20.0 MB/s shared" in page and "(set by otto-operator)" in page
    assert 'value="20"' in page  # the field shows what is set
    operator_client.post(reverse("modelfiles:download-limits"), {"max_speed": ""})
    assert DownloadLimits.objects.get().max_speed is None
    operator_client.post(reverse("modelfiles:download-limits"), {"max_speed": "-3"})
    assert "was not changed" in operator_client.get(DOWNLOADS_URL).content.decode()
    assert DownloadLimits.objects.get().max_speed is None


def test_the_speed_page_sets_one_downloads_limit(operator_client):
    download = running()
    url = reverse("modelfiles:download-speed", args=[download.pk])
    assert 'data-testid="download-speed-form"' in operator_client.get(url).content.decode()
    response = operator_client.post(url, {"max_speed": "1.5", "next": DOWNLOADS_URL})
    assert response.status_code == 302 and response["Location"] == DOWNLOADS_URL
    download.refresh_from_db()
    assert download.max_speed == int(1.5 * MB)
    assert operator_client.post(url, {"max_speed": "0"}).status_code == 400


def test_the_pull_form_takes_a_priority_and_a_speed_limit(hub, hf_env, operator_client):
    hub.add_repo(REPO, files={"a.Q4_K_M.gguf": pseudo_random(1000)})
    form = operator_client.get(reverse("modelfiles:pull")).content.decode()
    assert 'name="priority"' in form and 'name="max_speed"' in form
    response = operator_client.post(
        reverse("modelfiles:pull"),
        {"repo": REPO, "filename": "a.Q4_K_M.gguf", "revision": "main", "priority": str(LOW), "max_speed": "4"},
    )
    assert response.status_code == 302
    download = Download.objects.get()
    assert (download.priority, download.max_speed) == (LOW, 4 * MB)
