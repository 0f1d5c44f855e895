"""The audit log pages: admins only; list, filters, sorting, paging, one entry's diff, CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from aliases.services import alias_create, alias_update
from config.audit import views as audit_views
from config.audit.models import AuditEntry
from tests.audit import make_entry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = reverse("audit:list")
CSV_URL = reverse("audit:export-csv")
JSON_URL = reverse("audit:export-json")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_client(client_for, admin_user) -> Client:
    return client_for(admin_user)


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr [^>]*data-audit="(\d+)"', response.content.decode())]


def csv_rows(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def json_body(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


def set_time(entry: AuditEntry, days_ago: int) -> AuditEntry:
    AuditEntry.objects.filter(pk=entry.pk).update(at=timezone.now() - timedelta(days=days_ago))
    entry.refresh_from_db()
    return entry


# --- who may see it ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_only_admins_open_the_audit_log(request, client_for, role):
    entry = make_entry()
    client = client_for(request.getfixturevalue(role))
    for url in (LIST_URL, CSV_URL, JSON_URL, reverse("audit:detail", args=[entry.pk])):
        assert client.get(url).status_code == 403, url
    assert "Audit log" not in client.get(reverse("home")).content.decode()


def test_signed_out_visitors_go_to_the_login_page(client):
    for url in (LIST_URL, CSV_URL, JSON_URL, reverse("audit:detail", args=[make_entry().pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_admins_find_the_log_in_the_nav(admin_client):
    page = admin_client.get(reverse("home")).content.decode()
    assert f'href="{LIST_URL}">Audit log</a>' in page
    assert 'aria-current="page" href="/audit/"' in admin_client.get(LIST_URL).content.decode()


def test_pages_are_read_only(admin_client):
    entry = make_entry()
    for url in (LIST_URL, CSV_URL, reverse("audit:detail", args=[entry.pk])):
        assert admin_client.post(url).status_code == 405, url


# --- the list ------------------------------------------------------------------------------------------------------


def test_the_list_shows_newest_first_with_who_what_and_the_changed_fields(admin_client, editor):
    older = make_entry(actor=editor, object_repr="llama3:instruct")
    newer = make_entry(kind="download", action="cancel", before={"status": "queued"}, after={"status": "cancelled"})

    response = admin_client.get(LIST_URL)

    assert response.status_code == 200
    assert row_ids(response) == [newer.pk, older.pk]
    page = response.content.decode()
    assert "edith-editor" in page and "llama3:instruct" in page and ">system<" in page
    assert "<code>status</code>" in page and "<code>temperature</code>" in page
    assert reverse("audit:detail", args=[older.pk]) in page
    assert 'data-testid="audit-count"' in page and "of 2 entries" in page
    # A strict Content-Security-Policy forbids inline script and style.
    assert " style=" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)


def test_an_empty_log_says_so(admin_client):
    response = admin_client.get(LIST_URL)
    assert "Nothing has changed yet." in response.content.decode()
    response = admin_client.get(LIST_URL, {"kind": "token"})
    assert "No entries match your filters." in response.content.decode()


def test_filters_narrow_by_actor_kind_action_object_and_dates(admin_client, editor, operator):
    by_editor = make_entry(actor=editor, object_repr="llama3:instruct", action="create")
    by_operator = make_entry(actor=operator, kind="download", action="request", object_repr="acme/x/y.gguf@main")
    by_system = make_entry(kind="modelfile", action="scan", object_repr="all repos", object_id="")
    old = set_time(make_entry(actor=editor, object_repr="old-alias", action="delete"), days_ago=10)
    today = timezone.localdate()

    def shown(**query) -> list[int]:
        response = admin_client.get(LIST_URL, query)
        assert response.status_code == 200
        return row_ids(response)

    assert shown(actor="edith-editor") == [by_editor.pk, old.pk]
    assert shown(actor=":system") == [by_system.pk]
    assert shown(kind="download") == [by_operator.pk]
    assert shown(action="scan") == [by_system.pk]
    assert shown(q="LLAMA3") == [by_editor.pk]
    assert shown(q=by_operator.object_id) == [by_operator.pk]
    assert shown(object_id=by_editor.object_id) == [by_editor.pk]
    assert shown(since=str(today - timedelta(days=1))) == [by_system.pk, by_operator.pk, by_editor.pk]
    assert shown(until=str(today - timedelta(days=5))) == [old.pk]
    assert shown(since=str(today - timedelta(days=11)), until=str(today - timedelta(days=9))) == [old.pk]
    assert shown(actor="edith-editor", since=str(today)) == [by_editor.pk]
    # The filters offer the actors and actions that occur, and the system.
    page = admin_client.get(LIST_URL).content.decode()
    for option in ('value=":system"', 'value="edith-editor"', 'value="otto-operator"', 'value="scan"'):
        assert option in page


def test_bad_filter_values_are_reported_not_a_server_error(admin_client):
    make_entry()
    for query in ({"since": "31.02.2026"}, {"kind": "planet"}, {"until": "9999-12-31"}, {"since": "0001-01-01"}):
        response = admin_client.get(LIST_URL, query)
        assert response.status_code == 200, query
    assert "Enter a valid date." in admin_client.get(LIST_URL, {"since": "31.02.2026"}).content.decode()
    # The ends of the calendar are no bound at all rather than an overflow.
    assert len(row_ids(admin_client.get(LIST_URL, {"since": "0001-01-01", "until": "9999-12-31"}))) == 1


def test_the_list_sorts_by_each_column_and_pages(admin_client, editor, operator):
    entries = [make_entry(actor=editor if number % 2 else operator) for number in range(25)]

    by_actor = row_ids(admin_client.get(LIST_URL, {"sort": "actor_name", "per_page": 100}))
    assert by_actor == [e.pk for e in entries if e.actor_name == "edith-editor"] + [
        e.pk for e in entries if e.actor_name == "otto-operator"
    ]
    oldest_first = row_ids(admin_client.get(LIST_URL, {"sort": "at", "per_page": 100}))
    assert oldest_first == [entry.pk for entry in entries]
    for column in ("kind", "action", "object_repr", "-at"):
        assert admin_client.get(LIST_URL, {"sort": column}).status_code == 200
    first = row_ids(admin_client.get(LIST_URL, {"per_page": 10}))
    third = row_ids(admin_client.get(LIST_URL, {"per_page": 10, "page": 3}))
    assert first == [entry.pk for entry in reversed(entries)][:10]
    assert third == [entry.pk for entry in reversed(entries)][20:]


def test_htmx_gets_only_the_table(admin_client):
    make_entry()
    fragment = admin_client.get(LIST_URL, {"kind": "alias"}, **HTMX)
    assert fragment.content.decode().lstrip().startswith('<div id="audit-table"')
    assert "HX-Request" in fragment["Vary"]


def test_the_list_page_query_count_does_not_grow_with_rows(
    admin_client, editor, operator, django_assert_max_num_queries
):
    for number in range(120):
        make_entry(actor=(editor, operator, None)[number % 3], action=("create", "update", "delete")[number % 3])
    admin_client.get(LIST_URL)  # warm the session

    with django_assert_max_num_queries(8):
        response = admin_client.get(LIST_URL, {"per_page": 100})
    assert len(row_ids(response)) == 100


# --- one entry -----------------------------------------------------------------------------------------------------


def test_an_entry_shows_each_changed_field_old_to_new(admin_client, editor):
    alias = alias_create(data={"alias": "tiny:chat", "repo": "acme/Tiny-GGUF", "filename": "t.gguf"}, by=editor)
    alias_update(alias=alias, data={"temperature": 0.9, "stop": ["</s>", "<|eot|>"]}, expected_version=1, by=editor)
    entry = AuditEntry.objects.get(action="update")

    response = admin_client.get(reverse("audit:detail", args=[entry.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    diff = page.split('data-testid="audit-diff"')[1].split("</table>")[0]
    assert re.findall(r'<tr data-field="([^"]+)"', diff) == ["temperature", "stop"]
    temperature = diff.split('data-field="temperature"')[1].split("</tr>")[0]
    assert "not set" in temperature.split('data-side="after"')[0]
    assert '<code class="text-break">0.9</code>' in temperature.split('data-side="after"')[1]
    stop = diff.split('data-field="stop"')[1].split("</tr>")[0]
    assert "<code>&lt;/s&gt;</code>" in stop and "<code>&lt;|eot|&gt;</code>" in stop
    # Unchanged fields are there too, folded away; the alias's page and its other entries are linked.
    assert 'data-testid="audit-unchanged"' in page and 'data-field="repo"' in page
    assert reverse("aliases:detail", args=["tiny:chat"]) in page
    assert f"{LIST_URL}?kind=alias&amp;object_id={alias.pk}" in page
    assert 'data-field="actor">edith-editor' in page
    assert " style=" not in page


def test_a_created_object_shows_its_values_and_a_system_entry_says_system(admin_client):
    entry = make_entry(kind="modelfile", action="scan", before=None, after={"created": 2, "files_added": ["a", "b"]})

    page = admin_client.get(reverse("audit:detail", args=[entry.pk])).content.decode()

    assert '<h2 class="h5 border-bottom pb-1">Values</h2>' in page
    files = page.split('data-field="files_added"')[1].split("</tr>")[0]
    assert "<li><code>a</code></li><li><code>b</code></li>" in files
    assert '<span class="text-body-secondary">system</span>' in page


def test_a_missing_entry_is_404(admin_client):
    assert admin_client.get(reverse("audit:detail", args=[999999])).status_code == 404


def test_stored_values_are_escaped(admin_client):
    entry = make_entry(object_repr="<script>alert(1)</script>", after={"user": "<img src=x onerror=alert(1)>"})
    for url in (LIST_URL, reverse("audit:detail", args=[entry.pk])):
        page = admin_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- exports -------------------------------------------------------------------------------------------------------


def test_the_list_links_its_exports_with_its_filters_and_sort(admin_client):
    make_entry(kind="alias")
    make_entry(kind="download")
    page = admin_client.get(LIST_URL, {"kind": "alias", "sort": "actor_name", "page": "1", "per_page": 10})
    assert f'href="{CSV_URL}?kind=alias&amp;sort=actor_name"' in page.content.decode()
    assert f'href="{JSON_URL}?kind=alias&amp;sort=actor_name"' in page.content.decode()
    # The fragment htmx swaps in after a filter change carries the exports of the new filters.
    fragment = admin_client.get(LIST_URL, {"kind": "download"}, **HTMX).content.decode()
    assert f'href="{CSV_URL}?kind=download"' in fragment


def test_csv_export_has_every_filtered_row_and_parses(admin_client, editor):
    alias_create(data={"alias": "tiny:chat", "repo": "acme/Tiny-GGUF", "filename": "t.gguf"}, by=editor)
    make_entry(kind="download", action="request")
    for _ in range(35):
        make_entry(actor=editor)

    response = admin_client.get(CSV_URL, {"actor": "edith-editor", "sort": "at"})

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    assert response["X-Total-Count"] == "36" and response["X-Export-Truncated"] == "false"
    rows = csv_rows(response)
    assert len(rows) == 36  # all of them, not one page
    assert list(rows[0]) == ["id", "at", "actor", "kind", "action", "object_id", "object_repr", "before", "after"]
    first = rows[0]
    assert (first["actor"], first["kind"], first["action"], first["object_repr"]) == (
        "edith-editor",
        "alias",
        "create",
        "tiny:chat",
    )
    assert first["before"] == "" and json.loads(first["after"])["alias"] == "tiny:chat"
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)


def test_csv_cells_cannot_become_spreadsheet_formulas(admin_client):
    make_entry(actor=UserFactory(username="+cmd"), object_repr="=HYPERLINK(1)")
    row = csv_rows(admin_client.get(CSV_URL))[0]
    assert row["actor"] == "'+cmd" and row["object_repr"] == "'=HYPERLINK(1)"


def test_json_export_has_every_filtered_row_and_parses(admin_client, operator):
    make_entry(actor=operator, kind="download", action="cancel", before={"status": "queued"}, after=None)
    make_entry(kind="alias")

    body = json_body(admin_client.get(JSON_URL, {"kind": "download"}))

    assert (body["total"], body["truncated"]) == (1, False)
    [row] = body["data"]
    assert set(row) == {"id", "at", "actor", "kind", "action", "object_id", "object_repr", "before", "after"}
    assert (row["actor"], row["kind"], row["action"], row["before"], row["after"]) == (
        "otto-operator",
        "download",
        "cancel",
        {"status": "queued"},
        None,
    )
    assert json_body(admin_client.get(JSON_URL, {"actor": ":system"}))["data"][0]["actor"] is None


def test_exports_stop_at_their_limit_and_say_so(admin_client, monkeypatch):
    monkeypatch.setattr(audit_views, "EXPORT_MAX_ROWS", 3)
    for _ in range(5):
        make_entry()

    body = json_body(admin_client.get(JSON_URL))
    response = admin_client.get(CSV_URL)

    assert (body["total"], body["truncated"], body["limit"], len(body["data"])) == (5, True, 3, 3)
    assert response["X-Total-Count"] == "5" and response["X-Export-Truncated"] == "true"
    assert len(csv_rows(response)) == 3


def test_an_export_with_bad_filters_is_refused(admin_client):
    response = admin_client.get(CSV_URL, {"since": "yesterday"})
    assert response.status_code == 400
    assert "From: Enter a valid date." in response.content.decode()
    assert admin_client.get(JSON_URL, {"kind": "planet"}).status_code == 400


def test_the_admin_role_holds_the_audit_permission_and_no_other_role_does():
    from django.contrib.auth.models import Group

    holders = Group.objects.filter(
        permissions__codename="view_auditentry", permissions__content_type__app_label="audit"
    )
    assert list(holders.values_list("name", flat=True)) == ["admin"]


def test_a_member_of_the_admin_group_who_is_not_a_superuser_reads_the_log(client_for, admin_user):
    admin_user.is_superuser = False
    admin_user.save(update_fields=["is_superuser"])
    make_entry()
    assert client_for(admin_user).get(LIST_URL).status_code == 200


def test_the_django_admin_shows_entries_read_only(admin_client):
    entry = make_entry()
    assert admin_client.get(reverse("admin:audit_auditentry_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:audit_auditentry_change", args=[entry.pk])).status_code == 200
    assert admin_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    response = admin_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"})
    assert response.status_code == 403 and AuditEntry.objects.filter(pk=entry.pk).exists()
