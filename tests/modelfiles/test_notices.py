"""Notices (issue 11, item 5): whoever asked for a pull sees how it ended on their next page, and the webhook URL
receives one JSON event per finished download, sent by a real worker to a real HTTP server started here."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.messages import get_messages

from modelfiles import services
from modelfiles.models import Download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """The page tests run the task body themselves; what would go to the broker is recorded instead."""
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


def messages_on(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def pulled(by, filename: str = FILE) -> Download:
    download, created = services.download_request(repo=REPO, filename=filename, revision="main", by=by)
    assert created
    return services.download_run(download_id=download.pk, worker="test")


# --- on the next page ------------------------------------------------------------------------------------------------


def test_the_requester_is_told_on_their_next_page_once(hub, hf_env, enqueued, client_for, operator, admin_user):
    hub.add_repo(REPO, files={FILE: pseudo_random(2 * 1024 * 1024)})
    download = pulled(operator)
    assert download.status == Download.Status.COMPLETED and download.notice_pending
    client = client_for(operator)
    # A poll and the API are not pages: they leave the notice for the next page.
    assert client.get("/files/downloads/active/", HTTP_HX_REQUEST="true").status_code == 200
    assert client.get("/api/modelfiles/status").status_code == 200
    assert messages_on(client.get("/aliases/")) == [
        f"Your pull of {REPO}/{FILE}@main completed (2.0 MB, sha256 verified); it is in the model files."
    ]
    assert messages_on(client.get("/aliases/")) == []  # told once
    assert messages_on(client_for(admin_user).get("/aliases/")) == []  # only the one who asked
    download.refresh_from_db()
    assert not download.notice_pending


def test_a_failure_is_told_with_what_to_do(hub, hf_env, enqueued, client_for, operator):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    hub.faults.set(corrupt=True)
    download = pulled(operator)
    assert download.status == Download.Status.FAILED
    response = client_for(operator).get("/")
    assert messages_on(response) == [f"Your pull of {REPO}/{FILE}@main failed: {download.error_message}"]
    assert "does not match the Hub's" in download.error_message


def test_a_retry_takes_back_a_notice_not_seen_yet(hub, hf_env, enqueued, client_for, operator):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    hub.faults.set(corrupt=True, times=1)
    download = pulled(operator)
    services.download_retry(download=download, by=operator)
    download.refresh_from_db()
    assert not download.notice_pending
    assert messages_on(client_for(operator).get("/")) == []


def test_the_pending_notices_cost_one_query_per_page(client_for, operator, django_assert_max_num_queries):
    from tests.modelfiles import make_download

    make_download(status=Download.Status.COMPLETED, requested_by=operator)  # told already
    client = client_for(operator)
    client.get("/files/downloads/")
    with django_assert_max_num_queries(100) as captured:
        client.get("/files/downloads/")
    notices = [query for query in captured.captured_queries if "notice_pending" in query["sql"].partition("WHERE")[2]]
    assert len(notices) == 1


# --- the webhook ---------------------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST (headers and JSON body) and answers 500 to the first
    `fail_first` of them, as a receiver that is briefly down."""

    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.refused = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    if receiver.refused < receiver.fail_first:
                        receiver.refused += 1
                        status = 500
                    else:
                        receiver.events.append(json.loads(body))
                        receiver.headers.append({name.lower(): value for name, value in self.headers.items()})
                        status = 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/modeldesk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, seconds: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.events)} event(s), expected {count}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=1)
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.mark.worker
def test_the_webhook_receives_one_event_per_finished_download(hub, hf_env, client_for, operator, receiver, settings):
    settings.MODELDESK_WEBHOOK_URL = receiver.url  # a cancel's event is sent from here, the others by the worker
    other = "other.Q8_0.gguf"
    slow = "slow.Q5_K_M.gguf"
    files = {FILE: pseudo_random(1_000_000), other: pseudo_random(1000, 3), slow: pseudo_random(4_000_000, 4)}
    hub.add_repo(REPO, files=files)
    hub.faults.set(corrupt=True, path=other)
    hub.faults.set(throttle_bytes_per_second=500_000, path=slow)
    client = client_for(operator)

    def pull(filename: str) -> str:
        response = client.post("/api/modelfiles/pull", {"repo": REPO, "filename": filename},
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 201, response.content
        return response.json()["id"]

    with celery_worker(extra_env={**hf_env, "MODELDESK_WEBHOOK_URL": receiver.url}):
        done = pull(FILE)

        # The first POST was refused (500): the worker sent it again.
        receiver.wait_for(1)
        assert receiver.refused == 1
        failed = pull(other)
        receiver.wait_for(2)
        cancelled = pull(slow)
        wait_for_download(cancelled, lambda row: row.bytes_done > 0)
        assert client.post(f"/api/modelfiles/status/{cancelled}/cancel").status_code == 200
        events = receiver.wait_for(3)
        time.sleep(1)
    assert len(receiver.events) == 3  # one each, no more
    by_id = {item["download"]["id"]: item for item in events}
    assert by_id[done]["event"] == "download.completed"
    completed = by_id[done]["download"]
    assert (completed["repo"], completed["filename"], completed["status"]) == (REPO, FILE, "completed")
    assert (completed["bytes_done"], completed["verified"], completed["requested_by"]) == (
        1_000_000, "sha256", operator.username
    )  # fmt: skip
    assert completed["url"] == f"/api/modelfiles/status/{done}" and completed["error"] is None
    assert by_id[failed]["event"] == "download.failed"
    assert by_id[failed]["download"]["error"]["code"] == "checksum_mismatch"
    assert by_id[cancelled]["event"] == "download.cancelled"
    assert all(headers["content-type"] == "application/json" for headers in receiver.headers)
    assert {headers["x-modeldesk-event"] for headers in receiver.headers} == {
        "download.completed", "download.failed", "download.cancelled"
    }  # fmt: skip
    assert Download.objects.get(pk=done).status == Download.Status.COMPLETED
