"""Source rules: MODELDESK_ALLOWED_REPOS (glob patterns over owner/name) and MODELDESK_MAX_FILE_BYTES.

Applied to the pull form, the API, `manage.py pull`, retries, and by the worker to rows queued while the Hub could
not be asked. Against the real test Hub.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse

from modelfiles import services
from modelfiles.models import Download
from tests.api_errors import assert_error
from tests.modelfiles import make_download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

API_PULL = "/api/modelfiles/pull"
PULL_URL = reverse("modelfiles:pull")
PULL = {"repo": REPO, "filename": FILE, "revision": "main"}


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[str]:
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


def post_json(client, url: str, data):
    return client.post(url, data=data, content_type="application/json")


@pytest.mark.parametrize(
    ("patterns", "repo", "allowed"),
    [
        ([], "anyone/anything", True),
        (["TheBloke/*"], "TheBloke/Llama-2-7B-GGUF", True),
        (["TheBloke/*"], "thebloke/llama-2-7b-gguf", True),  # the Hub's ids are case-insensitive
        (["TheBloke/*"], "TheBlokeX/Llama", False),
        (["TheBloke"], "TheBloke/Llama-2-7B-GGUF", True),  # an owner alone: all its repos
        (["TheBloke"], "acme/TheBloke", False),
        (["meta-llama/Llama-3*"], "meta-llama/Llama-3.1-8B", True),
        (["meta-llama/Llama-3*"], "meta-llama/Llama-2-7b", False),
        (["TheBloke/*", "acme/tiny-*"], "acme/tiny-llama-GGUF", True),
    ],
)
def test_allowed_repos_are_glob_patterns_over_owner_and_name(settings, patterns, repo, allowed):
    settings.PULL_ALLOWED_REPOS = patterns
    assert services.repo_allowed(repo) is allowed


def test_the_api_refuses_a_repo_outside_the_allow_list_without_asking_the_hub(operator_client, hub, hf_env, settings):
    settings.PULL_ALLOWED_REPOS = ["TheBloke/*"]
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    response = post_json(operator_client, API_PULL, PULL)
    error = assert_error(response, 403, "forbidden_error", code="repo_not_allowed", param="repo")
    assert "MODELDESK_ALLOWED_REPOS (TheBloke/*)" in error["message"]
    assert not Download.objects.exists()
    assert hub.requests_for(FILE) == []


def test_an_allowed_repo_is_queued(operator_client, hub, hf_env, settings):
    settings.PULL_ALLOWED_REPOS = ["acme"]
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    assert post_json(operator_client, API_PULL, PULL).status_code == 201


def test_the_form_names_the_rule(operator_client, settings):
    settings.PULL_ALLOWED_REPOS = ["TheBloke/*"]
    response = operator_client.post(PULL_URL, PULL)
    assert response.status_code == 200
    assert "is not allowed: pulls are limited to the repos matching MODELDESK_ALLOWED_REPOS" in (
        response.content.decode()
    )
    assert not Download.objects.exists()


def test_a_file_over_the_size_limit_is_refused_by_the_pre_flight(operator_client, hub, hf_env, settings):
    settings.PULL_MAX_FILE_BYTES = 999
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    response = post_json(operator_client, API_PULL, PULL)
    error = assert_error(response, 403, "forbidden_error", code="file_too_large", param="filename")
    assert "MODELDESK_MAX_FILE_BYTES" in error["message"] and "1000 bytes" in error["message"]
    assert not Download.objects.exists()
    settings.PULL_MAX_FILE_BYTES = 1000  # at the limit is allowed
    assert post_json(operator_client, API_PULL, PULL).status_code == 201


def test_the_pull_command_applies_the_rules(hub, hf_env, settings):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    settings.PULL_ALLOWED_REPOS = ["TheBloke/*"]
    with pytest.raises(CommandError, match=r"repo: .* MODELDESK_ALLOWED_REPOS"):
        call_command("pull", REPO, FILE, stdout=io.StringIO())
    settings.PULL_ALLOWED_REPOS = []
    settings.PULL_MAX_FILE_BYTES = 10
    with pytest.raises(CommandError, match=r"filename: .*\(MODELDESK_MAX_FILE_BYTES\)"):
        call_command("pull", REPO, FILE, stdout=io.StringIO())
    assert not Download.objects.exists()


def test_a_retry_is_refused_once_the_repo_is_no_longer_allowed(operator_client, settings):
    failed = make_download(repo=REPO, filename=FILE, status=Download.Status.FAILED, error_code="network_error")
    settings.PULL_ALLOWED_REPOS = ["TheBloke/*"]
    response = post_json(operator_client, f"/api/modelfiles/status/{failed.pk}/retry", None)
    assert_error(response, 403, "forbidden_error", code="repo_not_allowed", param="repo")
    failed.refresh_from_db()
    assert failed.status == Download.Status.FAILED


def test_the_retry_button_says_why_it_was_refused(operator_client, settings):
    failed = make_download(repo=REPO, filename=FILE, status=Download.Status.FAILED, bytes_total=5000)
    settings.PULL_MAX_FILE_BYTES = 4000
    response = operator_client.post(reverse("modelfiles:download-retry", args=[failed.pk]))
    assert response.status_code == 302
    [message] = [str(message) for message in get_messages(response.wsgi_request)]
    assert message.startswith(f"{REPO}/{FILE}@main was not queued again: ")
    assert "MODELDESK_MAX_FILE_BYTES" in message
    failed.refresh_from_db()
    assert failed.status == Download.Status.FAILED


@pytest.mark.parametrize(
    ("rule", "code"),
    [({"PULL_ALLOWED_REPOS": ["TheBloke/*"]}, "repo_not_allowed"), ({"PULL_MAX_FILE_BYTES": 500}, "file_too_large")],
)
def test_the_worker_applies_the_rules_to_a_pull_queued_unchecked(hub, hf_env, settings, monkeypatch, rule, code):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the Hub could not be asked at request time
    download, created = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    assert created and download.error_code == services.HUB_UNCHECKED
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    for name, value in rule.items():
        setattr(settings, name, value)
    done = services.download_run(download_id=download.pk, worker="test")
    assert (done.status, done.error_code) == (Download.Status.FAILED, code)
    assert "MODELDESK_" in done.error_message
    assert [record.method for record in hub.requests_for(FILE)] == ["HEAD"]  # no byte fetched
