from __future__ import annotations

import json
import logging

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from aliases.api import ALIAS_LIST_QUERY
from aliases.models import Alias
from aliases.services import alias_create, alias_update
from config.accounts.services import apitoken_create
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db

LIST_URL = "/api/models"


def detail_url(name: str) -> str:
    return f"{LIST_URL}/{name}"


def alias_payload(**overrides) -> dict:
    data = {
        "alias": "llama3:instruct",
        "repo": "meta-llama/Llama-3-8B-GGUF",
        "filename": "llama3-8b.Q4_K_M.gguf",
        "snapshot": "main",
        "chat_template": "llama3",
        "request_params": {"temperature": 0.7, "max_tokens": 512, "stop": ["</s>"]},
        "context_params": {"n_ctx": 4096, "n_threads": 8},
    }
    data.update(overrides)
    return data


def with_request_params(**params) -> dict:
    return alias_payload(request_params=params, context_params={})


def with_context_params(**params) -> dict:
    return alias_payload(request_params={}, context_params=params)


def post_json(client: Client, data, url: str = LIST_URL, **kwargs):
    return client.post(url, data=data, content_type="application/json", **kwargs)


def put_json(client: Client, url: str, data, **kwargs):
    return client.put(url, data=data, content_type="application/json", **kwargs)


def created_alias(editor, **overrides) -> Alias:
    """An alias made through the service, so it has the change record a conflict report reads."""
    data = alias_payload(**overrides)
    values = {key: value for key, value in data.items() if key not in ("request_params", "context_params")}
    values.update(data["request_params"])
    values.update(data["context_params"])
    return alias_create(data=values, by=editor)


# --- list ------------------------------------------------------------------------------------------------------


def test_list_answers_the_envelope_sorted_by_name_ignoring_case(viewer_client, alias_factory):
    for name in ("beta", "Alpha", "gamma"):
        alias_factory(alias=name)

    response = viewer_client.get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "total", "page", "page_size"}
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 30)
    assert [row["alias"] for row in body["data"]] == ["Alpha", "beta", "gamma"]


def test_list_rows_have_the_full_alias_shape_with_unset_params(viewer_client, alias_factory):
    alias_factory(alias="plain", temperature=0.5)

    row = viewer_client.get(LIST_URL).json()["data"][0]

    assert set(row) == {
        "alias",
        "repo",
        "filename",
        "snapshot",
        "source",
        "chat_template",
        "request_params",
        "context_params",
        "version",
        "created_at",
        "updated_at",
        "file_status",
        "file_progress",
        "file_hosts",
    }
    assert (row["file_status"], row["file_progress"]) == ("missing", None)
    assert row["request_params"] == {
        "temperature": 0.5,
        "top_p": None,
        "max_tokens": None,
        "frequency_penalty": None,
        "presence_penalty": None,
        "seed": None,
        "stop": [],
        "user": "",
    }
    assert row["context_params"] == dict.fromkeys(("n_seed", "n_threads", "n_ctx", "n_parallel", "n_predict", "n_keep"))
    assert (row["source"], row["version"]) == ("user", 1)


def test_list_pages_and_a_page_past_the_end_is_empty(viewer_client, alias_factory):
    for number in range(5):
        alias_factory(alias=f"m{number}")

    third = viewer_client.get(LIST_URL, {"page": 3, "page_size": 2}).json()
    past_end = viewer_client.get(LIST_URL, {"page": 9, "page_size": 2})

    assert [row["alias"] for row in third["data"]] == ["m4"]
    assert (third["total"], third["page"], third["page_size"]) == (5, 3, 2)
    assert past_end.status_code == 200
    assert past_end.json() == {"data": [], "total": 5, "page": 9, "page_size": 2}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("page", "1.5"),
        ("page_size", "0"),
        ("page_size", "101"),
        ("page_size", "abc"),
    ],
)
def test_bad_paging_is_refused_naming_the_parameter(viewer_client, param, value):
    response = viewer_client.get(LIST_URL, {param: value})

    error = assert_error(response, 400, "invalid_request_error", param=param)
    assert param in error["message"]


def test_page_size_bounds_are_inclusive(viewer_client, alias_factory):
    alias_factory()

    assert viewer_client.get(LIST_URL, {"page_size": 1}).status_code == 200
    assert viewer_client.get(LIST_URL, {"page_size": 100}).json()["page_size"] == 100


def test_list_sorts_ascending_and_descending_with_unset_values_last(viewer_client, alias_factory):
    alias_factory(alias="warm", temperature=1.2)
    alias_factory(alias="unset", temperature=None)
    alias_factory(alias="cold", temperature=0.1)
    alias_factory(alias="cold-too", temperature=0.1)

    ascending = viewer_client.get(LIST_URL, {"sort": "temperature", "sort_order": "asc"}).json()["data"]
    descending = viewer_client.get(LIST_URL, {"sort": "temperature", "sort_order": "desc"}).json()["data"]

    # equal temperatures keep creation (primary key) order, reversed when descending
    assert [row["alias"] for row in ascending] == ["cold", "cold-too", "warm", "unset"]
    assert [row["alias"] for row in descending] == ["warm", "cold-too", "cold", "unset"]


def test_every_sort_key_in_the_schema_works(viewer_client, alias_factory):
    alias_factory(alias="one", temperature=0.5, n_ctx=2048, user="someone")
    alias_factory(alias="two")

    for sort in ALIAS_LIST_QUERY.sorts:
        for sort_order in ("asc", "desc"):
            response = viewer_client.get(LIST_URL, {"sort": sort, "sort_order": sort_order})
            assert response.status_code == 200, (sort, response.content)
            assert response.json()["total"] == 2


def test_list_sorts_by_name_descending(viewer_client, alias_factory):
    for name in ("b", "A", "c"):
        alias_factory(alias=name)

    data = viewer_client.get(LIST_URL, {"sort": "alias", "sort_order": "desc"}).json()["data"]

    assert [row["alias"] for row in data] == ["c", "b", "A"]


@pytest.mark.parametrize(
    ("query", "param"),
    [({"sort": "stop"}, "sort"), ({"sort": "id; drop"}, "sort"), ({"sort_order": "up"}, "sort_order")],
)
def test_bad_sort_is_refused_naming_the_parameter(viewer_client, query, param):
    response = viewer_client.get(LIST_URL, query)

    assert_error(response, 400, "invalid_request_error", param=param)


def test_search_ignores_case_across_name_repo_and_filename(viewer_client, alias_factory):
    alias_factory(alias="Qwen-chat", repo="someone/other-GGUF", filename="x.gguf")
    alias_factory(alias="by-repo", repo="QWEN/Qwen2-GGUF", filename="y.gguf")
    alias_factory(alias="by-file", repo="someone/third-GGUF", filename="models/qwen2.Q8_0.gguf")
    alias_factory(alias="llama", repo="meta/llama-GGUF", filename="llama.gguf")

    body = viewer_client.get(LIST_URL, {"search": "qwen"}).json()

    assert sorted(row["alias"] for row in body["data"]) == ["Qwen-chat", "by-file", "by-repo"]
    assert body["total"] == 3


def test_list_query_count_does_not_grow_with_page_size(viewer_client, alias_factory):
    for _ in range(25):
        alias_factory()

    def count_queries(page_size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = viewer_client.get(LIST_URL, {"page_size": page_size})
        assert len(response.json()["data"]) == page_size
        return len(queries)

    viewer_client.get(LIST_URL)  # the signed-in user and session into the cache (CACHE_URL), as on every later page
    assert count_queries(2) == count_queries(25)


def test_list_query_count_is_small(viewer_client, alias_factory, django_assert_max_num_queries):
    for _ in range(30):
        alias_factory()

    # session + user + permissions, then one count and one page, then the page's files and active downloads
    with django_assert_max_num_queries(8):
        assert viewer_client.get(LIST_URL).status_code == 200


# --- create ----------------------------------------------------------------------------------------------------


def test_create_answers_201_with_the_full_alias(editor_client, editor):
    response = post_json(editor_client, alias_payload())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["alias"] == "llama3:instruct"
    assert body["chat_template"] == "llama3"
    assert body["request_params"]["temperature"] == 0.7
    assert body["request_params"]["stop"] == ["</s>"]
    assert body["request_params"]["top_p"] is None
    assert body["context_params"]["n_ctx"] == 4096
    assert (body["source"], body["version"]) == ("user", 1)
    assert body["created_at"] and body["updated_at"]
    assert response["Location"] == "/api/models/llama3:instruct"
    saved = Alias.objects.get(alias="llama3:instruct")
    assert (saved.temperature, saved.n_ctx, saved.created_by) == (0.7, 4096, editor)


def test_create_fills_defaults_and_ignores_read_only_fields(editor_client):
    data = {
        "alias": "bare",
        "repo": "owner/name",
        "filename": "m.gguf",
        "source": "model",
        "version": 9,
        "created_at": "2000-01-01T00:00:00Z",
        "request_params": None,
    }

    response = post_json(editor_client, data)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["snapshot"], body["chat_template"]) == ("main", "embedded")
    assert (body["source"], body["version"]) == ("user", 1)
    assert all(value is None for value in body["context_params"].values())
    assert Alias.objects.get(alias="bare").source == Alias.Source.USER


def test_temperature_out_of_range_is_refused_with_its_range(editor_client):
    response = post_json(editor_client, with_request_params(temperature=2.5))

    error = assert_error(response, 400, "invalid_request_error", param="temperature")
    assert "temperature" in error["message"]
    assert "between 0 and 2" in error["message"] and "2.5" in error["message"]
    assert list(error["fields"]) == ["temperature"]
    assert not Alias.objects.exists()


def test_every_bad_field_is_listed_together(editor_client):
    data = alias_payload(
        repo="not a repo",
        request_params={"temperature": 2.5, "top_p": 3},
        context_params={"n_ctx": 1},
    )

    response = post_json(editor_client, data)

    error = assert_error(response, 400, "invalid_request_error", param="repo")
    assert {"repo", "temperature", "top_p", "n_ctx"} <= set(error["fields"])
    for name in ("repo", "temperature", "top_p", "n_ctx"):
        assert f"{name}: " in error["message"]


@pytest.mark.parametrize(
    ("group", "field", "value", "accepted"),
    [
        ("context_params", "n_ctx", 0, True),
        ("context_params", "n_ctx", 1, False),
        ("context_params", "n_ctx", 127, False),
        ("context_params", "n_ctx", 128, True),
        ("context_params", "n_ctx", 1_048_576, True),
        ("context_params", "n_ctx", 1_048_577, False),
        ("context_params", "n_predict", -2, True),
        ("context_params", "n_predict", -1, True),
        ("context_params", "n_predict", -3, False),
        ("context_params", "n_predict", 0, False),
        ("context_params", "n_predict", 1, True),
        ("context_params", "n_keep", -1, True),
        ("context_params", "n_keep", -2, False),
        ("context_params", "n_keep", 0, True),
        ("context_params", "n_threads", 1024, True),
        ("context_params", "n_threads", 1025, False),
        ("context_params", "n_seed", 2**32 - 1, True),
        ("context_params", "n_seed", 2**32, False),
        ("request_params", "temperature", 0, True),
        ("request_params", "temperature", 2.0, True),
        ("request_params", "temperature", -0.01, False),
        ("request_params", "top_p", 1, True),
        ("request_params", "top_p", 1.001, False),
        ("request_params", "frequency_penalty", -2, True),
        ("request_params", "frequency_penalty", -2.1, False),
        ("request_params", "max_tokens", 1, True),
        ("request_params", "max_tokens", 0, False),
        ("request_params", "seed", 2**63 - 1, True),
        ("request_params", "seed", -(2**63), True),
        ("request_params", "seed", 2**63, False),
    ],
)
def test_bounds_just_inside_are_accepted_and_just_outside_refused(editor_client, group, field, value, accepted):
    data = alias_payload(request_params={}, context_params={})
    data[group] = {field: value}

    response = post_json(editor_client, data)

    if accepted:
        assert response.status_code == 201, response.content
        assert response.json()[group][field] == value
    else:
        error = assert_error(response, 400, "invalid_request_error", param=field)
        assert "Must be" in error["fields"][field][0]


def test_limits_relative_to_n_ctx_are_checked(editor_client):
    response = post_json(
        editor_client, alias_payload(request_params={"max_tokens": 4096}, context_params={"n_ctx": 2048})
    )

    error = assert_error(response, 400, "invalid_request_error", param="max_tokens")
    assert "n_ctx" in error["message"]


def test_limits_relative_to_n_ctx_do_not_apply_to_the_model_default(editor_client):
    data = alias_payload(request_params={"max_tokens": 4096}, context_params={"n_ctx": 0, "n_keep": 9000})

    assert post_json(editor_client, data).status_code == 201


@pytest.mark.parametrize(
    ("data", "param"),
    [
        (alias_payload(colour="blue"), "colour"),
        (alias_payload(request_params={"temperature": 0.5, "temprature": 0.5}), "temprature"),
        (alias_payload(context_params={"n_gpu_layers": 10}), "n_gpu_layers"),
    ],
)
def test_unknown_fields_are_refused_at_every_level(editor_client, data, param):
    response = post_json(editor_client, data)

    error = assert_error(response, 400, "invalid_request_error", code="unknown_field", param=param)
    assert param in error["message"]
    assert not Alias.objects.exists()


def test_unknown_fields_are_listed_with_the_other_mistakes(editor_client):
    data = alias_payload(alias=5, request_params={"temperature": "hot", "temprature": 0.5})

    response = post_json(editor_client, data)

    error = assert_error(response, 400, "invalid_request_error", code="unknown_field", param="temprature")
    assert set(error["fields"]) == {"temprature", "alias", "temperature"}


@pytest.mark.parametrize(
    ("group", "field", "value"),
    [
        ("request_params", "temperature", "0.5"),
        ("request_params", "temperature", True),
        ("request_params", "temperature", [0.5]),
        ("request_params", "max_tokens", 1.5),
        ("request_params", "max_tokens", 512.0),
        ("request_params", "max_tokens", "512"),
        ("context_params", "n_ctx", True),
        ("context_params", "n_ctx", {"value": 512}),
        ("request_params", "stop", "</s>"),
        ("request_params", "stop", ["</s>", 3]),
        ("request_params", "stop", {"0": "x"}),
        ("request_params", "user", 42),
        (None, "alias", 42),
        (None, "repo", None),
        (None, "request_params", "temperature=1"),
        (None, "context_params", [4096]),
    ],
)
def test_wrong_json_types_are_refused_naming_the_field(editor_client, group, field, value):
    data = alias_payload()
    if group:
        data[group] = {field: value}
    else:
        data[field] = value

    response = post_json(editor_client, data)

    error = assert_error(response, 400, "invalid_request_error", param=field)
    assert field in error["message"]
    assert not Alias.objects.exists()


@pytest.mark.parametrize(
    "body", ['{"temperature": NaN}', '{"alias": "x", "request_params": {"temperature": Infinity}}']
)
def test_json_nan_and_infinity_are_refused(editor_client, body):
    response = post_json(editor_client, body)

    assert_error(response, 400, "invalid_request_error", code="parse_error")


def test_a_number_too_large_for_a_float_is_refused(editor_client):
    body = json.dumps(alias_payload(request_params={})).replace(
        '"request_params": {}', '"request_params": {"top_p": 1e999}'
    )

    response = post_json(editor_client, body)

    assert_error(response, 400, "invalid_request_error", param="top_p")


@pytest.mark.parametrize(
    ("group", "field", "value"),
    [
        (None, "alias", "a" * 65),
        (None, "filename", "m" * 300 + ".gguf"),
        ("request_params", "user", "u" * 257),
        ("request_params", "stop", ["x" * 129]),
    ],
)
def test_over_long_strings_are_refused_naming_the_field(editor_client, group, field, value):
    data = alias_payload()
    if group:
        data[group] = {field: value}
    else:
        data[field] = value

    response = post_json(editor_client, data)

    assert_error(response, 400, "invalid_request_error", param=field)


def test_a_name_differing_only_in_case_is_a_duplicate(editor_client, alias_factory):
    alias_factory(alias="Llama3:Instruct")

    response = post_json(editor_client, alias_payload(alias="llama3:instruct"))

    error = assert_error(response, 400, "invalid_request_error", param="alias")
    assert "Llama3:Instruct" in error["message"]
    assert Alias.objects.count() == 1


@pytest.mark.parametrize("body", ['{"alias": "x",', "not json", '{"alias": "x"} trailing'])
def test_malformed_json_is_a_400_envelope(editor_client, body):
    response = post_json(editor_client, body)

    assert_error(response, 400, "invalid_request_error", code="parse_error", param=None)


def test_a_json_array_body_is_refused(editor_client):
    response = post_json(editor_client, [alias_payload()])

    assert_error(response, 400, "invalid_request_error", param=None)


def test_a_form_encoded_body_is_unsupported_media_type(editor_client):
    response = editor_client.post(LIST_URL, {"alias": "x"})

    assert_error(response, 415, "invalid_request_error", code="unsupported_media_type")


# --- one alias: read, update, delete ---------------------------------------------------------------------------


def test_get_one_alias_ignores_case(viewer_client, alias_factory):
    alias_factory(alias="Llama3.1:8B-Instruct", n_ctx=8192)

    response = viewer_client.get(detail_url("llama3.1:8b-instruct"))

    assert response.status_code == 200
    assert response.json()["alias"] == "Llama3.1:8B-Instruct"
    assert response.json()["context_params"]["n_ctx"] == 8192


def test_a_missing_alias_is_a_404_envelope(viewer_client):
    response = viewer_client.get(detail_url("nope"))

    error = assert_error(response, 404, "not_found_error", code="alias_not_found")
    assert "nope" in error["message"]


def test_put_replaces_the_alias_and_increments_the_version(editor_client, editor):
    alias = created_alias(editor)
    data = alias_payload(request_params={"temperature": 0.2}, context_params={"n_ctx": 2048}, version=1)
    del data["chat_template"]

    response = put_json(editor_client, detail_url("llama3:instruct"), data)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 2
    alias.refresh_from_db()
    # a full replacement: what was left out goes back to its default
    assert (alias.temperature, alias.max_tokens, alias.stop, alias.n_threads) == (0.2, None, [], None)
    assert (alias.n_ctx, alias.chat_template, alias.version) == (2048, "embedded", 2)


def test_put_without_a_version_is_refused(editor_client, editor):
    created_alias(editor)

    response = put_json(editor_client, detail_url("llama3:instruct"), alias_payload())

    assert_error(response, 400, "invalid_request_error", param="version")


def test_a_stale_put_is_a_409_and_leaves_the_row_unchanged(editor_client, editor, admin_user):
    alias = created_alias(editor)
    alias_update(alias=alias, data={"temperature": 1.1}, expected_version=1, by=admin_user)

    response = put_json(
        editor_client,
        detail_url("llama3:instruct"),
        alias_payload(request_params={"temperature": 0.3}, version=1),
    )

    error = assert_error(response, 409, "conflict_error", code="version_conflict")
    assert "ada-admin" in error["message"] and "temperature" in error["message"]
    assert error["changed_fields"] == ["temperature"]
    current = response.json()["current"]
    assert (current["version"], current["request_params"]["temperature"]) == (2, 1.1)
    alias.refresh_from_db()
    assert (alias.version, alias.temperature) == (2, 1.1)


def test_put_with_another_name_renames(editor_client, editor):
    created_alias(editor, alias="old-name")

    response = put_json(editor_client, detail_url("old-name"), alias_payload(alias="new-name", version=1))

    assert response.status_code == 200, response.content
    assert response.json()["alias"] == "new-name"
    assert editor_client.get(detail_url("old-name")).status_code == 404
    assert editor_client.get(detail_url("new-name")).status_code == 200


def test_renaming_onto_another_alias_is_refused(editor_client, editor, alias_factory):
    created_alias(editor, alias="mine")
    alias_factory(alias="Taken")

    response = put_json(editor_client, detail_url("mine"), alias_payload(alias="taken", version=1))

    assert_error(response, 400, "invalid_request_error", param="alias")
    assert Alias.objects.filter(alias="mine").exists()


def test_put_on_a_missing_alias_is_404(editor_client):
    response = put_json(editor_client, detail_url("ghost"), alias_payload(version=1))

    assert_error(response, 404, "not_found_error", code="alias_not_found")


def test_delete_answers_204_then_the_alias_is_gone(editor_client, alias_factory):
    alias_factory(alias="doomed")

    response = editor_client.delete(detail_url("DOOMED"))

    assert response.status_code == 204
    assert not Alias.objects.filter(alias="doomed").exists()
    assert_error(editor_client.get(detail_url("doomed")), 404, "not_found_error")
    assert_error(editor_client.delete(detail_url("doomed")), 404, "not_found_error", code="alias_not_found")


@pytest.mark.parametrize("method", ["put", "delete"])
def test_aliases_made_from_model_files_are_read_only(editor_client, alias_factory, method):
    alias = alias_factory(alias="owner-repo:Q4_K_M", temperature=0.4, source=Alias.Source.MODEL)
    url = detail_url(alias.alias)

    if method == "put":
        response = put_json(editor_client, url, alias_payload(alias=alias.alias, version=1))
    else:
        response = editor_client.delete(url)

    error = assert_error(response, 403, "forbidden_error", code="read_only_alias")
    assert "read-only" in error["message"]
    alias.refresh_from_db()
    assert (alias.version, alias.temperature) == (1, 0.4)


# --- authentication and roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_viewers_and_operators_cannot_write(request, client_for, alias_factory, role, method):
    user = request.getfixturevalue(role)
    client = client_for(user)
    alias_factory(alias="existing")

    if method == "post":
        response = post_json(client, alias_payload())
    elif method == "put":
        response = put_json(client, detail_url("existing"), alias_payload(alias="existing", version=1))
    else:
        response = client.delete(detail_url("existing"))

    assert_error(response, 403, "forbidden_error", code="permission_denied")
    assert list(Alias.objects.values_list("alias", "version")) == [("existing", 1)]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor", "admin_user"])
def test_every_role_can_read(request, client_for, alias_factory, role):
    client = client_for(request.getfixturevalue(role))
    alias_factory(alias="visible")

    assert client.get(LIST_URL).status_code == 200
    assert client.get(detail_url("visible")).status_code == 200


def test_reading_needs_the_view_permission(client_for, viewer, alias_factory):
    alias_factory(alias="hidden")
    viewer.groups.clear()

    response = client_for(viewer).get(LIST_URL)

    assert_error(response, 403, "forbidden_error", code="permission_denied")


def test_admins_can_write(client_for, admin_user):
    response = post_json(client_for(admin_user), alias_payload())

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", LIST_URL), ("post", LIST_URL), ("get", detail_url("x")), ("delete", detail_url("x"))],
)
def test_no_credentials_is_401_asking_for_a_bearer_token(client, method, url):
    response = getattr(client, method)(url)

    assert_error(response, 401, "authentication_error", code="not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer mdk_not-a-real-token", "Bearer", "Bearer two parts"])
def test_a_bad_token_is_401(client, header):
    response = client.get(LIST_URL, headers={"Authorization": header})

    assert_error(response, 401, "authentication_error", code="authentication_failed")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_bearer_token_reads_and_writes_without_a_session(editor, alias_factory):
    alias_factory(alias="existing")
    client = Client(enforce_csrf_checks=True)
    headers = {"Authorization": f"Bearer {apitoken_create(user=editor)}"}

    listed = client.get(LIST_URL, headers=headers)
    created = post_json(client, alias_payload(), headers=headers)

    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert created.status_code == 201, created.content
    assert Alias.objects.get(alias="llama3:instruct").created_by == editor


def test_a_viewer_token_cannot_write(viewer):
    headers = {"Authorization": f"Bearer {apitoken_create(user=viewer)}"}

    response = post_json(Client(), alias_payload(), headers=headers)

    assert_error(response, 403, "forbidden_error")


def test_session_writes_need_the_csrf_token(editor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)

    response = post_json(client, alias_payload())

    error = assert_error(response, 403, "forbidden_error")
    assert "CSRF" in error["message"]
    assert not Alias.objects.exists()


# --- other errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "editor"])
@pytest.mark.parametrize(("method", "url"), [("patch", detail_url("x")), ("post", detail_url("x")), ("put", LIST_URL)])
def test_a_wrong_method_is_405_for_every_role(request, client_for, role, method, url):
    client = client_for(request.getfixturevalue(role))

    response = getattr(client, method)(url, data="{}", content_type="application/json")

    assert_error(response, 405, "invalid_request_error", code="method_not_allowed")
    assert response["Allow"]


@pytest.mark.parametrize("url", ["/api/models/", "/api/models/x/", "/api/nothing-here"])
def test_unknown_api_addresses_are_a_404_envelope(viewer_client, url):
    response = viewer_client.get(url)

    assert_error(response, 404, "not_found_error")


def test_an_unexpected_error_is_a_logged_500_envelope(viewer_client, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("aliases.api.alias_list", broken)

    with caplog.at_level(logging.ERROR, logger="config.api"):
        response = viewer_client.get(LIST_URL)

    error = assert_error(response, 500, "internal_server_error", param=None)
    assert "fire" not in error["message"]
    assert any(record.exc_info and "database on fire" in str(record.exc_info[1]) for record in caplog.records)
