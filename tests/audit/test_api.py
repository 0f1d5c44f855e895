"""GET /api/audit: admins only, the list envelope, the list conventions and the audit filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from aliases.services import alias_create
from config.accounts.services import apitoken_create
from config.audit.models import AuditEntry
from tests.api_errors import assert_error
from tests.audit import make_entry

pytestmark = pytest.mark.django_db

URL = "/api/audit"


@pytest.fixture
def admin_client(client_for, admin_user) -> Client:
    return client_for(admin_user)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["data"]]


def test_admins_get_the_envelope_newest_first(admin_client, editor):
    alias = alias_create(data={"alias": "tiny:chat", "repo": "acme/Tiny-GGUF", "filename": "t.gguf"}, by=editor)
    system = make_entry(kind="modelfile", action="scan", before=None, after={"created": 1})

    response = admin_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "total", "page", "page_size"}
    assert (body["total"], body["page"], body["page_size"]) == (2, 1, 30)
    newest, oldest = body["data"]
    assert newest["id"] == system.pk and newest["actor"] is None and newest["after"] == {"created": 1}
    assert set(oldest) == {"id", "at", "actor", "kind", "action", "object_id", "object_repr", "before", "after"}
    assert (oldest["actor"], oldest["kind"], oldest["action"]) == ("edith-editor", "alias", "create")
    assert (oldest["object_id"], oldest["object_repr"]) == (str(alias.pk), "tiny:chat")
    assert oldest["before"] is None and oldest["after"]["repo"] == "acme/Tiny-GGUF"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", oldest["at"])


def test_a_token_of_an_admin_works(admin_user):
    entry = make_entry()
    client = Client(headers={"Authorization": f"Bearer {apitoken_create(user=admin_user)}"})
    # Making the token is itself recorded, newest first.
    listed = client.get(URL).json()["data"]
    assert [(row["kind"], row["action"]) for row in listed] == [("token", "create"), (entry.kind, entry.action)]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_other_roles_are_forbidden(request, client_for, role):
    make_entry()
    response = client_for(request.getfixturevalue(role)).get(URL)
    assert_error(response, 403, "forbidden_error")


def test_anonymous_callers_get_401(client):
    response = client.get(URL)
    assert_error(response, 401, "authentication_error")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_only_get_is_allowed(admin_client):
    assert_error(admin_client.post(URL, {}, content_type="application/json"), 405, "invalid_request_error")


def test_filters_narrow_the_list(admin_client, editor, operator):
    by_editor = make_entry(actor=editor, action="create", object_repr="llama3:instruct")
    by_operator = make_entry(actor=operator, kind="download", action="request", object_id="5b2f", object_repr="a/b")
    by_system = make_entry(kind="modelfile", action="scan", object_id="", object_repr="all repos")
    old = make_entry(actor=editor, action="delete")
    AuditEntry.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=10))
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()

    assert ids(admin_client.get(URL, {"actor": "EDITH-editor"})) == [by_editor.pk, old.pk]
    assert ids(admin_client.get(URL, {"actor": ":system"})) == [by_system.pk]
    assert ids(admin_client.get(URL, {"kind": "download"})) == [by_operator.pk]
    assert ids(admin_client.get(URL, {"action": "scan"})) == [by_system.pk]
    assert ids(admin_client.get(URL, {"object_id": "5b2f"})) == [by_operator.pk]
    assert ids(admin_client.get(URL, {"search": "LLAMA"})) == [by_editor.pk]
    assert ids(admin_client.get(URL, {"since": week_ago})) == [by_system.pk, by_operator.pk, by_editor.pk]
    assert ids(admin_client.get(URL, {"until": week_ago})) == [old.pk]
    assert ids(admin_client.get(URL, {"actor": "edith-editor", "since": week_ago, "kind": "alias"})) == [by_editor.pk]
    assert admin_client.get(URL, {"actor": "edith-editor"}).json()["total"] == 2
    # Blank filters are no filter, as everywhere in the API.
    assert len(ids(admin_client.get(URL, {"actor": "", "kind": "", "since": ""}))) == 4


def test_since_and_until_take_offsets_and_naive_times_are_utc(admin_client):
    entry = make_entry()
    AuditEntry.objects.filter(pk=entry.pk).update(at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))

    assert ids(admin_client.get(URL, {"since": "2026-06-01T12:00:00"})) == [entry.pk]
    assert ids(admin_client.get(URL, {"since": "2026-06-01T12:00:01"})) == []
    assert ids(admin_client.get(URL, {"since": "2026-06-01T13:30:00+02:00"})) == [entry.pk]
    assert ids(admin_client.get(URL, {"until": "2026-06-01T12:00:00Z"})) == []
    assert ids(admin_client.get(URL, {"until": "2026-06-01T12:00:00.000001Z"})) == [entry.pk]


def test_sorting_and_paging_follow_the_list_conventions(admin_client, editor, operator):
    entries = [make_entry(actor=(editor, operator)[number % 2]) for number in range(5)]

    oldest_first = ids(admin_client.get(URL, {"sort": "at", "sort_order": "asc"}))
    assert oldest_first == [entry.pk for entry in entries]
    by_actor = ids(admin_client.get(URL, {"sort": "actor", "sort_order": "asc"}))
    assert by_actor == [entries[0].pk, entries[2].pk, entries[4].pk, entries[1].pk, entries[3].pk]
    second = admin_client.get(URL, {"page": 2, "page_size": 2, "sort": "at", "sort_order": "asc"}).json()
    assert ([row["id"] for row in second["data"]], second["total"], second["page"], second["page_size"]) == (
        [entries[2].pk, entries[3].pk],
        5,
        2,
        2,
    )
    assert ids(admin_client.get(URL, {"page": 9})) == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"kind": "planet"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-02-30T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"actor": "x" * 151}, "actor"),
        ({"action": "create\n"}, "action"),
        ({"sort": "before"}, "sort"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(admin_client, query, param):
    assert_error(admin_client.get(URL, query), 400, "invalid_request_error", code="invalid_parameter", param=param)


@pytest.mark.parametrize("param", ["object_id", "search", "actor"])
def test_a_nul_in_a_parameter_is_400_naming_it(admin_client, param):
    response = admin_client.get(URL, {param: "a\x00b"})
    assert_error(response, 400, "invalid_request_error", code="nul_character", param=param)


def test_query_count_does_not_grow_with_the_page(admin_client, editor, django_assert_max_num_queries):
    for _ in range(120):
        make_entry(actor=editor)
    admin_client.get(URL)

    with django_assert_max_num_queries(5):
        assert len(ids(admin_client.get(URL, {"page_size": 100}))) == 100


def test_the_schema_documents_the_endpoint_its_filters_and_errors(admin_client):
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/audit"]["get"]
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert set(parameters) == {
        "page",
        "page_size",
        "sort",
        "sort_order",
        "search",
        "actor",
        "kind",
        "action",
        "object_id",
        "since",
        "until",
    }
    assert set(parameters["kind"]["enum"]) == {"alias", "preset", "modelfile", "download", "user", "role", "token"}
    assert parameters["since"]["format"] == parameters["until"]["format"] == "date-time"
    assert "pattern" in parameters["actor"] and "pattern" in parameters["object_id"]
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    listing = schema["components"]["schemas"]["AuditEntryList"]["properties"]
    assert set(listing) == {"data", "total", "page", "page_size"}
