from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from config.accounts.services import apitoken_create
from modelfiles.models import Download
from tests.api_errors import assert_error
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file, make_download, make_modelfile

pytestmark = pytest.mark.django_db

FILES_URL = "/api/modelfiles"
PULL_URL = "/api/modelfiles/pull"
STATUS_URL = "/api/modelfiles/status"
DOWNLOAD_KEYS = {
    "id",
    "repo",
    "filename",
    "revision",
    "commit",
    "status",
    "verified",
    "bytes_total",
    "bytes_done",
    "percent",
    "speed",
    "eta",
    "error",
    "note",
    "attempts",
    "retry_at",
    "requested_by",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "parts",
    "part",
    "host",
    "priority",
    "position",
    "max_speed",
}
PULL = {"repo": "acme/Tiny-GGUF", "filename": "tiny.Q4_K_M.gguf", "revision": "main"}


def status_url(download_id, action: str = "") -> str:
    return f"{STATUS_URL}/{download_id}" + (f"/{action}" if action else "")


def post_json(client: Client, url: str, data, **kwargs):
    return client.post(url, data=data, content_type="application/json", **kwargs)


# --- model files ----------------------------------------------------------------------------------------------------


def test_model_files_come_in_the_list_envelope(viewer_client, alias_factory):
    file = make_modelfile(filename="llama.Q4_K_M.gguf", refs=["main"], size=4096)
    make_modelfile(filename="gone.gguf", present=False)
    alias_factory(alias="llama", repo=file.repo, filename=file.filename, snapshot="main")
    alias_factory(alias="llama-pinned", repo=file.repo, filename=file.filename, snapshot=COMMIT)
    alias_factory(alias="llama-old", repo=file.repo, filename=file.filename, snapshot=OTHER_COMMIT)
    response = viewer_client.get(FILES_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1 and body["page"] == 1 and body["page_size"] == 30
    assert body["data"] == [
        {
            "id": file.pk,
            "repo": "acme/Tiny-GGUF",
            "filename": "llama.Q4_K_M.gguf",
            "snapshot": COMMIT,
            "refs": ["main"],
            "size": 4096,
            "etag": file.etag,
            "modified_at": body["data"][0]["modified_at"],
            "aliases": ["llama", "llama-pinned"],
            # A row made directly, never scanned: no header read yet.
            "state": "ok",
            "state_reason": None,
            "gguf": None,
            "split": None,
            "update": None,
            # Made directly, never scanned: no location has claimed it.
            "host": None,
            "location": None,
        }
    ]
    assert body["data"][0]["modified_at"].startswith(file.modified_at.strftime("%Y-%m-%dT%H:%M"))


def test_model_files_search_sort_and_page(viewer_client):
    for index in range(5):
        make_modelfile(repo=f"acme/R{index % 2}-GGUF", filename=f"m{index}.gguf", size=100 + index)
    body = viewer_client.get(FILES_URL, {"search": "r1-gguf", "sort": "size", "sort_order": "desc"}).json()
    assert [row["filename"] for row in body["data"]] == ["m3.gguf", "m1.gguf"]
    assert body["total"] == 2
    body = viewer_client.get(FILES_URL, {"page": 2, "page_size": 2, "sort": "filename"}).json()
    assert [row["filename"] for row in body["data"]] == ["m2.gguf", "m3.gguf"]
    assert (body["total"], body["page"], body["page_size"]) == (5, 2, 2)
    past_the_end = viewer_client.get(FILES_URL, {"page": 9}).json()
    assert past_the_end["data"] == [] and past_the_end["total"] == 5


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"sort": "etag"}, "sort"),
        ({"sort_order": "up"}, "sort_order"),
    ],
)
def test_bad_list_parameters_are_named(viewer_client, query, param):
    assert_error(viewer_client.get(FILES_URL, query), 400, "invalid_request_error", param=param)
    status_query = query if param != "sort" else {"sort": "nope"}
    assert_error(viewer_client.get(STATUS_URL, status_query), 400, "invalid_request_error", param=param)


def test_model_file_list_queries_do_not_grow_with_page_size(viewer_client, alias_factory):
    for index in range(30):
        file = make_modelfile(filename=f"m{index:02d}.gguf")
        alias_factory(alias=f"a{index:02d}", repo=file.repo, filename=file.filename, snapshot="main")
    viewer_client.get(FILES_URL)
    counts = []
    for size in (1, 30):
        with CaptureQueriesContext(connection) as queries:
            body = viewer_client.get(FILES_URL, {"page_size": size}).json()
        assert len(body["data"]) == size and all(row["aliases"] for row in body["data"])
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_anonymous_callers_get_401(client):
    for url in (FILES_URL, STATUS_URL, status_url(uuid.uuid4())):
        response = client.get(url)
        assert_error(response, 401, "authentication_error")
        assert response["WWW-Authenticate"] == "Bearer"
    assert_error(post_json(client, PULL_URL, PULL), 401, "authentication_error")


def test_api_token_works_for_scripts(operator):
    client = Client()
    headers = {"Authorization": f"Bearer {apitoken_create(user=operator)}"}
    assert client.get(FILES_URL, headers=headers).status_code == 200
    response = client.post(PULL_URL, data=PULL, content_type="application/json", headers=headers)
    assert response.status_code == 201
    assert response.json()["requested_by"] == operator.username


# --- pull -----------------------------------------------------------------------------------------------------------


def test_pull_queues_a_download(operator_client, operator):
    response = post_json(operator_client, PULL_URL, PULL)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == DOWNLOAD_KEYS
    download = Download.objects.get()
    assert body["id"] == str(download.pk)
    assert response["Location"] == status_url(download.pk)
    assert body["status"] == "queued"
    assert body["requested_by"] == operator.username
    assert body["error"] is None and body["commit"] is None and body["percent"] is None
    assert (body["repo"], body["filename"], body["revision"]) == (PULL["repo"], PULL["filename"], "main")


def test_pulling_again_returns_the_active_download(operator_client):
    first = post_json(operator_client, PULL_URL, PULL).json()
    again = post_json(operator_client, PULL_URL, PULL)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert Download.objects.count() == 1


def test_revision_defaults_to_main(operator_client):
    body = post_json(operator_client, PULL_URL, {"repo": PULL["repo"], "filename": PULL["filename"]}).json()
    assert body["revision"] == "main"


def test_pulling_a_local_file_is_a_conflict(operator_client, hf_home):
    cache_file(hf_home, PULL["repo"], PULL["filename"])
    file = make_modelfile(repo=PULL["repo"], filename=PULL["filename"])
    response = post_json(operator_client, PULL_URL, PULL)
    assert_error(response, 409, "conflict_error", code="already_local", param=None)
    assert response.json()["modelfile"]["snapshot"] == file.snapshot
    assert not Download.objects.exists()
    # Known to the cache but not yet scanned: still a conflict, without the file's row.
    cache_file(hf_home, PULL["repo"], "other.gguf")
    response = post_json(operator_client, PULL_URL, {**PULL, "filename": "other.gguf"})
    assert_error(response, 409, "conflict_error", code="already_local")
    assert response.json()["modelfile"] is None


def test_pull_names_every_bad_field(operator_client):
    response = post_json(operator_client, PULL_URL, {"repo": "not a repo", "filename": "model.bin", "revision": ""})
    error = assert_error(response, 400, "invalid_request_error")
    assert set(error["fields"]) == {"repo", "filename", "revision"}
    assert error["param"] in {"repo", "filename", "revision"}
    assert not Download.objects.exists()


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"filename": PULL["filename"]}, "repo"),
        ({**PULL, "repo": 42}, "repo"),
        ({**PULL, "filename": None}, "filename"),
        ({**PULL, "revision": ["main"]}, "revision"),
    ],
)
def test_pull_checks_types_and_required_fields(operator_client, payload, param):
    assert_error(post_json(operator_client, PULL_URL, payload), 400, "invalid_request_error", param=param)
    assert not Download.objects.exists()


def test_pull_refuses_unknown_fields(operator_client):
    response = post_json(operator_client, PULL_URL, {**PULL, "urgency": "high"})
    assert_error(response, 400, "invalid_request_error", code="unknown_field", param="urgency")
    assert not Download.objects.exists()


def test_pull_needs_json(operator_client):
    response = operator_client.post(PULL_URL, PULL)  # a form post
    assert_error(response, 415, "invalid_request_error")
    response = operator_client.post(PULL_URL, data="{not json", content_type="application/json")
    assert_error(response, 400, "invalid_request_error")


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_pull_needs_the_request_download_permission(request, client_for, role):
    response = post_json(client_for(request.getfixturevalue(role)), PULL_URL, PULL)
    assert_error(response, 403, "forbidden_error")
    assert not Download.objects.exists()


def test_wrong_methods_get_405_envelopes(operator_client):
    download = make_download()
    assert_error(operator_client.get(PULL_URL), 405, "invalid_request_error")
    assert_error(post_json(operator_client, FILES_URL, {}), 405, "invalid_request_error")
    assert_error(operator_client.delete(status_url(download.pk)), 405, "invalid_request_error")
    assert_error(operator_client.get(status_url(download.pk, "cancel")), 405, "invalid_request_error")


# --- status ---------------------------------------------------------------------------------------------------------


def test_one_download_in_full(viewer_client, operator):
    download = make_download(
        status=Download.Status.FAILED,
        commit=COMMIT,
        bytes_total=1000,
        bytes_done=333,
        attempts=3,
        error_code="gated_repo",
        error_message="acme/Tiny-GGUF is gated: accept its licence, then set HF_TOKEN and retry.",
        requested_by=operator,
    )
    response = viewer_client.get(status_url(download.pk))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DOWNLOAD_KEYS
    assert body["id"] == str(download.pk)
    assert body["commit"] == COMMIT
    assert body["percent"] == 33.3
    assert body["error"] == {"code": "gated_repo", "message": download.error_message}
    assert body["requested_by"] == operator.username
    assert body["attempts"] == 3
    assert body["speed"] is None and body["eta"] is None and body["started_at"] is None
    assert body["verified"] is None


def test_a_completed_download_says_which_hash_was_compared(viewer_client):
    download = make_download(status=Download.Status.COMPLETED, commit=COMMIT, verified="git-sha1")
    assert viewer_client.get(status_url(download.pk)).json()["verified"] == "git-sha1"


@pytest.mark.parametrize("download_id", [str(uuid.uuid4()), "not-a-uuid", "12345"])
def test_unknown_download_is_a_404_envelope(viewer_client, download_id):
    assert_error(viewer_client.get(status_url(download_id)), 404, "not_found_error", code="download_not_found")


def test_downloads_list_filters_by_status(viewer_client):
    failed = make_download(status=Download.Status.FAILED)
    cancelled = make_download(status=Download.Status.CANCELLED)
    make_download(status=Download.Status.COMPLETED)
    make_download(status=Download.Status.QUEUED)
    body = viewer_client.get(STATUS_URL, {"status": "failed"}).json()
    assert [row["id"] for row in body["data"]] == [str(failed.pk)]
    assert body["total"] == 1
    body = viewer_client.get(STATUS_URL, {"status": "failed,cancelled", "sort_order": "asc"}).json()
    assert [row["id"] for row in body["data"]] == [str(failed.pk), str(cancelled.pk)]
    assert viewer_client.get(STATUS_URL).json()["total"] == 4
    assert_error(viewer_client.get(STATUS_URL, {"status": "stalled"}), 400, "invalid_request_error", param="status")


def test_downloads_list_is_newest_first_and_pages(viewer_client):
    made = [make_download(status=Download.Status.COMPLETED, attempts=index) for index in range(5)]
    body = viewer_client.get(STATUS_URL, {"page_size": 2}).json()
    assert [row["id"] for row in body["data"]] == [str(made[4].pk), str(made[3].pk)]
    body = viewer_client.get(STATUS_URL, {"page_size": 2, "page": 3, "sort": "attempts", "sort_order": "asc"}).json()
    assert [row["id"] for row in body["data"]] == [str(made[4].pk)]
    assert (body["total"], body["page"], body["page_size"]) == (5, 3, 2)
    body = viewer_client.get(STATUS_URL, {"search": made[2].filename}).json()
    assert [row["id"] for row in body["data"]] == [str(made[2].pk)]


def test_downloads_list_queries_do_not_grow_with_page_size(viewer_client, operator, viewer):
    for index in range(30):
        make_download(status=Download.Status.COMPLETED, requested_by=operator if index % 2 else viewer)
    viewer_client.get(STATUS_URL)
    counts = []
    for size in (1, 30):
        with CaptureQueriesContext(connection) as queries:
            assert len(viewer_client.get(STATUS_URL, {"page_size": size}).json()["data"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- cancel and retry -----------------------------------------------------------------------------------------------


def test_cancel_and_retry_for_scripts(operator_client, operator):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=10, bytes_done=5)
    response = post_json(operator_client, status_url(download.pk, "cancel"), None)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["error"]["code"] == "cancelled" and operator.username in body["error"]["message"]
    response = post_json(operator_client, status_url(download.pk, "retry"), None)
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert response.json()["error"] is None
    download.refresh_from_db()
    assert download.status == Download.Status.QUEUED


def test_cancel_of_an_inactive_download_is_a_conflict(operator_client):
    download = make_download(status=Download.Status.COMPLETED)
    response = post_json(operator_client, status_url(download.pk, "cancel"), None)
    assert_error(response, 409, "conflict_error", code="not_active")
    assert response.json()["current"]["status"] == "completed"


def test_retry_of_an_active_download_is_a_conflict(operator_client):
    download = make_download(status=Download.Status.QUEUED)
    response = post_json(operator_client, status_url(download.pk, "retry"), None)
    assert_error(response, 409, "conflict_error", code="not_retryable")
    assert response.json()["current"]["id"] == str(download.pk)


def test_retry_when_a_newer_download_is_active_returns_it(operator_client):
    old = make_download(status=Download.Status.FAILED, filename="same.gguf")
    newer = make_download(status=Download.Status.DOWNLOADING, filename="same.gguf")
    response = post_json(operator_client, status_url(old.pk, "retry"), None)
    assert response.status_code == 200
    assert response.json()["id"] == str(newer.pk)


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_cancel_and_retry_need_their_permissions(request, client_for, role):
    client = client_for(request.getfixturevalue(role))
    active = make_download(status=Download.Status.DOWNLOADING)
    failed = make_download(status=Download.Status.FAILED)
    assert_error(post_json(client, status_url(active.pk, "cancel"), None), 403, "forbidden_error")
    assert_error(post_json(client, status_url(failed.pk, "retry"), None), 403, "forbidden_error")
    active.refresh_from_db()
    failed.refresh_from_db()
    assert (active.status, failed.status) == (Download.Status.DOWNLOADING, Download.Status.FAILED)


def test_cancel_of_an_unknown_download_is_a_404(operator_client):
    response = post_json(operator_client, status_url(uuid.uuid4(), "cancel"), None)
    assert_error(response, 404, "not_found_error", code="download_not_found")


def test_schema_documents_the_endpoints(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert {"get"} <= set(paths["/api/modelfiles"])
    assert {"post"} <= set(paths["/api/modelfiles/pull"])
    assert set(paths["/api/modelfiles/pull"]["post"]["responses"]) >= {"200", "201", "400", "403", "409"}
    assert {"get"} <= set(paths["/api/modelfiles/status"])
    assert {"get"} <= set(paths["/api/modelfiles/status/{download_id}"])
    assert {"post"} <= set(paths["/api/modelfiles/status/{download_id}/cancel"])
    assert {"post"} <= set(paths["/api/modelfiles/status/{download_id}/retry"])
    status_params = {param["name"] for param in paths["/api/modelfiles/status"]["get"]["parameters"]}
    assert {"page", "page_size", "sort", "sort_order", "search", "status"} <= status_params
