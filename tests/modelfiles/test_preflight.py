"""The pull's pre-flight: the Hub is asked about the file before a row exists, against the real test Hub.

Gated, private and missing answers are refused at once with no row; a Hub that cannot be asked in time (a socket
that accepts and never answers, a refused connection, a 503) queues the pull as before, with a note saying so.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from modelfiles import services
from modelfiles.models import Download
from tests.api_errors import assert_error
from tests.modelfiles import cache_file
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)  # the task is handed to the broker on commit

API_PULL = "/api/modelfiles/pull"
PULL_URL = reverse("modelfiles:pull")
FILES_URL = reverse("modelfiles:pull-files")
PULL = {"repo": REPO, "filename": FILE, "revision": "main"}


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[str]:
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


@pytest.fixture
def silent_hub(monkeypatch, silent_endpoint) -> str:
    monkeypatch.setenv("HF_ENDPOINT", silent_endpoint)
    return silent_endpoint


def post_json(client, url: str, data):
    return client.post(url, data=data, content_type="application/json")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- refused at once ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "status", "error_type", "code", "param", "says"),
    [
        ("gated", 403, "forbidden_error", "gated_repo", "repo", "is gated"),
        ("private", 404, "not_found_error", "repo_not_found", "repo", "or it is private"),
        ("no_repo", 404, "not_found_error", "repo_not_found", "repo", "was not found"),
        ("no_file", 404, "not_found_error", "file_not_found", "filename", "does not exist"),
        ("no_revision", 404, "not_found_error", "revision_not_found", "revision", "does not exist"),
    ],
)
def test_the_api_refuses_what_the_hub_refuses_with_no_row(
    operator_client, hub, hf_env, setup, status, error_type, code, param, says
):
    files = {FILE: pseudo_random(1000)}
    if setup == "gated":
        hub.add_repo(REPO, files=files, gated=True)
    elif setup == "private":
        hub.add_repo(REPO, files=files, private=True)
    elif setup in ("no_file", "no_revision"):
        hub.add_repo(REPO, files={"other.Q2_K.gguf": pseudo_random(1000)} if setup == "no_file" else files)
    data = {**PULL, "revision": "v9"} if setup == "no_revision" else PULL
    started = time.monotonic()
    response = post_json(operator_client, API_PULL, data)
    assert time.monotonic() - started < 2
    error = assert_error(response, status, error_type, code=code, param=param)
    assert says in error["message"]
    assert not Download.objects.exists()
    # One question to the Hub, a HEAD: nothing downloaded.
    assert [record.method for record in hub.requests_for(FILE)] == ["HEAD"]


def test_the_pull_form_shows_the_refusal_and_queues_nothing(operator_client, hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)}, gated=True)
    response = operator_client.post(PULL_URL, PULL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "is gated: accept its licence on the Hub" in page
    assert 'id="pull-form"' in page and f'value="{FILE}"' in page  # the form again, as filled in
    assert not Download.objects.exists()


def test_a_file_larger_than_the_free_space_is_refused(operator_client, hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    # The Hub says the file is 1 EiB: no volume here has that much free.
    hub.override_headers({"X-Linked-Size": str(2**60)}, path=FILE)
    response = post_json(operator_client, API_PULL, PULL)
    error = assert_error(response, 400, "invalid_request_error", code="insufficient_space", param="filename")
    assert "Not enough disk space" in error["message"] and "free" in error["message"]
    assert not Download.objects.exists()


def test_the_pull_command_refuses_a_gated_file_before_any_row(hub, hf_env):
    from django.core.management import CommandError, call_command

    hub.add_repo(REPO, files={FILE: pseudo_random(1000)}, gated=True)
    with pytest.raises(CommandError, match=r"repo: .* is gated"):
        call_command("pull", REPO, FILE)
    assert not Download.objects.exists()


# --- checked and queued ---------------------------------------------------------------------------------------------


def test_a_file_the_hub_serves_is_queued_without_a_note(operator_client, hub, hf_env, enqueued):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    response = post_json(operator_client, API_PULL, PULL)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["note"] is None and body["error"] is None
    assert enqueued == [body["id"]]


def test_the_form_queues_a_file_the_hub_serves_with_a_plain_message(operator_client, hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    response = operator_client.post(PULL_URL, PULL)
    assert response.status_code == 302
    assert messages_of(response) == [f"Queued {REPO}/{FILE}@main."]


# --- the Hub cannot be asked: queued as before, saying so -----------------------------------------------------------


def test_a_hub_that_never_answers_queues_the_pull_within_the_timeout(operator_client, silent_hub, settings, enqueued):
    settings.PULL_PREFLIGHT_TIMEOUT_SECONDS = 1.0
    started = time.monotonic()
    response = post_json(operator_client, API_PULL, PULL)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.content
    assert 0.9 <= elapsed < 2.5, elapsed
    body = response.json()
    assert body["status"] == "queued" and body["error"] is None
    assert body["note"]["code"] == "hub_unchecked"
    assert "Could not check with the Hub (no answer within 1 s); queued anyway" in body["note"]["message"]
    assert enqueued == [body["id"]]


def test_a_refused_connection_queues_at_once_with_the_note_on_the_page(operator_client):
    # tests/conftest.py points HF_ENDPOINT at a port where nothing listens.
    started = time.monotonic()
    response = operator_client.post(PULL_URL, PULL)
    assert time.monotonic() - started < 1
    assert response.status_code == 302
    [message] = messages_of(response)
    assert message.startswith(f"Queued {REPO}/{FILE}@main. Could not check with the Hub (no connection: ")
    assert "queued anyway" in message and "HF_ENDPOINT" in message
    download = Download.objects.get()
    assert (download.status, download.error_code) == (Download.Status.QUEUED, services.HUB_UNCHECKED)


def test_a_hub_answering_503_queues_with_the_note(operator_client, hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    hub.faults.set(status=503, methods=["HEAD"], times=1)
    response = post_json(operator_client, API_PULL, PULL)
    assert response.status_code == 201, response.content
    assert "The Hub answered 503" in response.json()["note"]["message"]


def test_the_worker_asks_the_hub_and_the_note_goes(hub, hf_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download, created = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    assert created and download.error_code == services.HUB_UNCHECKED
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    done = services.download_run(download_id=download.pk, worker="test")
    assert done.status == Download.Status.COMPLETED
    assert (done.error_code, done.error_message) == ("", "")


def test_the_worker_still_fails_a_queued_pull_the_hub_refuses(hub, hf_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download, _ = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)}, gated=True)
    done = services.download_run(download_id=download.pk, worker="test")
    assert (done.status, done.error_code) == (Download.Status.FAILED, "gated_repo")


# --- the repo's file list -------------------------------------------------------------------------------------------


def file_rows(response) -> dict[str, str]:
    return dict(re.findall(r'<tr data-repo-file="([^"]+)" data-state="([^"]+)"', response.content.decode()))


def test_the_file_list_marks_local_and_downloading_files(operator_client, hub, hf_env, hf_home):
    names = ["a.Q2_K.gguf", "b.Q4_K_M.gguf", "c.Q8_0.gguf"]
    hub.add_repo(REPO, files={name: pseudo_random(1000, seed=i) for i, name in enumerate(names)})
    from tests.modelfiles.hubfixtures import hub_cache

    cache_file(hub_cache(hf_env).parent, REPO, names[0])
    Download.objects.create(repo=REPO, filename=names[1], revision="main", status=Download.Status.DOWNLOADING)
    response = operator_client.get(FILES_URL, {"repo": REPO, "revision": "main"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert file_rows(response) == {names[0]: "local", names[1]: "downloading", names[2]: "remote"}
    page = response.content.decode()
    assert "In the cache" in page and "Downloading" in page
    # Only the file that is neither here nor on its way gets a Pull button.
    assert re.findall(r'data-pull-filename="([^"]+)"', page) == [names[2]]


def test_a_file_is_pulled_from_the_list_in_one_click(operator_client, hub, hf_env, enqueued):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    page = operator_client.get(FILES_URL, {"repo": REPO}).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" class="d-inline">(.*?)</form>', page, re.S)
    assert form is not None
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    fields.pop("csrfmiddlewaretoken")
    assert fields == {"repo": REPO, "filename": FILE, "revision": "main"}
    response = operator_client.post(form.group(1), fields)
    assert response.status_code == 302 and response["Location"] == reverse("modelfiles:downloads")
    download = Download.objects.get()
    assert (download.repo, download.filename, download.error_code) == (REPO, FILE, "")
    assert enqueued == [str(download.pk)]


def test_listing_files_of_a_silent_hub_answers_within_the_timeout_and_names_hf_endpoint(
    operator_client, silent_hub, settings
):
    settings.HUB_PAGE_TIMEOUT_SECONDS = 1.0
    started = time.monotonic()
    response = operator_client.get(FILES_URL, {"repo": REPO}, HTTP_HX_REQUEST="true")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.9 <= elapsed < 2.5, elapsed
    problem = re.search(r'data-testid="repo-files-problem">([^<]+)<', response.content.decode()).group(1)
    assert "HF_ENDPOINT" in problem and "no answer within 1 s" in problem
    assert "will try again" not in problem  # the list is not retried: no promise it cannot keep


def test_listing_files_with_the_hub_refusing_connections_is_quick(operator_client):
    started = time.monotonic()
    response = operator_client.get(FILES_URL, {"repo": REPO}, HTTP_HX_REQUEST="true")
    assert time.monotonic() - started < 1
    assert "HF_ENDPOINT (http://127.0.0.1:9)" in response.content.decode()


def test_the_file_list_still_names_a_missing_repo(operator_client, hub, hf_env):
    response = operator_client.get(FILES_URL, {"repo": "acme/nothing-here"}, HTTP_HX_REQUEST="true")
    assert "was not found, or it is private" in response.content.decode()


def test_the_silent_hub_fixture_really_never_answers(silent_hub):
    # The timeout tests are only meaningful if this endpoint answers nothing at all.
    with socket.create_connection(("127.0.0.1", int(silent_hub.rsplit(":", 1)[1])), timeout=1) as conn:
        conn.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(0.5)
        with pytest.raises(TimeoutError):
            conn.recv(1)
