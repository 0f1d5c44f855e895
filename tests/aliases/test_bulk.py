"""Bulk and batch operations on aliases (issue 9, item 2): the service, the list page's action bar and
POST /api/models/bulk."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from aliases.bulk import BulkAction, alias_bulk_apply, bulk_selection
from aliases.models import Alias, AliasChange
from aliases.presets.services import preset_create
from aliases.services import alias_create, alias_update
from config.audit.models import AuditEntry
from tests.api_errors import assert_error
from tests.factories import AliasFactory

pytestmark = pytest.mark.django_db

API = "/api/models/bulk"
BULK_PAGE = "/aliases/-/bulk/"


def make(name: str, by=None, **values) -> Alias:
    return alias_create(
        data={"alias": name, "repo": f"acme/{name}-GGUF", "filename": f"{name}.Q4_K_M.gguf", **values}, by=by
    )


def generated(name: str = "acme/Gen-GGUF:Q4_K_M") -> Alias:
    return AliasFactory(alias=name, source=Alias.Source.MODEL, repo="acme/Gen-GGUF", filename="gen.Q4_K_M.gguf")


@pytest.fixture
def trio(editor):
    return [make(name, by=editor) for name in ("alpha", "bravo", "charlie")]


def fresh(name: str) -> Alias:
    return Alias.objects.get(alias=name)


def post_json(client, body):
    return client.post(API, data=json.dumps(body), content_type="application/json")


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- the service ---------------------------------------------------------------------------------------------------


def test_set_gives_each_alias_its_own_version_change_record_and_audit_entry(trio, editor):
    result = alias_bulk_apply(
        action=BulkAction.SET,
        selection=bulk_selection(names=["alpha", "BRAVO"]),
        values={"temperature": 0.3},
        by=editor,
    )

    assert result.changed == ["alpha", "bravo"] and result.skipped == []
    assert result.counts == {"selected": 2, "changed": 2, "unchanged": 0, "skipped": 0}
    for name in ("alpha", "bravo"):
        alias = fresh(name)
        assert (alias.temperature, alias.version, alias.updated_by) == (0.3, 2, editor)
        record = AliasChange.objects.get(alias=alias, version=2)
        assert record.changes == {"temperature": [None, 0.3]} and record.changed_by == editor
        entries = AuditEntry.objects.filter(kind="alias", action="update", object_repr=name)
        assert entries.count() == 1 and entries.get().after["temperature"] == 0.3
    assert fresh("charlie").version == 1


def test_clear_unsets_parameters_and_an_alias_already_clear_gets_no_new_version(editor):
    make("warm", by=editor, temperature=0.9, stop=["</s>"], user="bob")
    make("cold", by=editor)

    result = alias_bulk_apply(
        action=BulkAction.CLEAR, selection=bulk_selection(names=["warm", "cold"]),
        values=["temperature", "stop", "user"], by=editor,
    )  # fmt: skip

    assert result.changed == ["warm"] and result.unchanged == ["cold"]
    warm = fresh("warm")
    assert (warm.temperature, warm.stop, warm.user, warm.version) == (None, [], "", 2)
    assert fresh("cold").version == 1


def test_apply_preset_sets_the_preset_fields_and_keeps_the_others(trio, editor):
    preset = preset_create(data={"name": "cool", "temperature": 0.2, "top_p": 0.9}, by=editor)
    alias_update(alias=trio[0], data={"n_threads": 8}, expected_version=1, by=editor)

    result = alias_bulk_apply(
        action=BulkAction.APPLY_PRESET, selection=bulk_selection(names=["alpha", "bravo"]), preset=preset, by=editor
    )

    assert result.changed == ["alpha", "bravo"]
    alpha = fresh("alpha")
    assert (alpha.temperature, alpha.top_p, alpha.n_threads, alpha.version) == (0.2, 0.9, 8, 3)


def test_delete_removes_each_alias_with_its_own_record(trio, editor):
    result = alias_bulk_apply(action=BulkAction.DELETE, selection=bulk_selection(names=["alpha", "charlie"]), by=editor)

    assert result.changed == ["alpha", "charlie"]
    assert list(Alias.objects.values_list("alias", flat=True)) == ["bravo"]
    assert AliasChange.objects.filter(action="delete").count() == 2
    assert AuditEntry.objects.filter(kind="alias", action="delete").count() == 2


def test_read_only_and_unknown_aliases_are_skipped_with_a_reason(trio, editor):
    generated()

    result = alias_bulk_apply(
        action=BulkAction.DELETE, selection=bulk_selection(names=["acme/Gen-GGUF:Q4_K_M", "alpha", "nobody"]),
        by=editor,
    )  # fmt: skip

    assert result.changed == ["alpha"]
    skipped = {skip.alias: (skip.code, skip.reason) for skip in result.skipped}
    assert skipped["acme/Gen-GGUF:Q4_K_M"][0] == "read_only" and "read-only" in skipped["acme/Gen-GGUF:Q4_K_M"][1]
    assert skipped["nobody"][0] == "not_found"
    assert Alias.objects.filter(alias="acme/Gen-GGUF:Q4_K_M").exists()


def test_a_concurrent_edit_is_not_overwritten_and_the_result_says_who(trio, editor, make_user):
    other = make_user("editor", "olga-other")
    shown = {alias.alias: alias.version for alias in trio}  # what the editor's page showed
    alias_update(alias=trio[1], data={"temperature": 1.5}, expected_version=1, by=other)

    result = alias_bulk_apply(
        action=BulkAction.SET, selection=bulk_selection(names=list(shown)), values={"temperature": 0.1},
        expected=shown, by=editor,
    )  # fmt: skip

    assert result.changed == ["alpha", "charlie"]
    [skip] = result.skipped
    assert (skip.alias, skip.code) == ("bravo", "changed")
    assert "olga-other" in skip.reason and "version 1" in skip.reason
    bravo = fresh("bravo")
    assert (bravo.temperature, bravo.version) == (1.5, 2)  # their edit kept
    assert AuditEntry.objects.filter(kind="alias", action="update", object_repr="bravo").count() == 1


def test_select_across_skips_aliases_saved_after_the_list_was_shown(trio, editor, make_user):
    shown_at = timezone.now()
    alias_update(alias=trio[2], data={"n_ctx": 4096}, expected_version=1, by=make_user("editor", "olga-other"))

    result = alias_bulk_apply(
        action=BulkAction.SET, selection=bulk_selection(filters={"search": ""}), values={"top_p": 0.5},
        unchanged_since=shown_at, by=editor,
    )  # fmt: skip

    assert result.changed == ["alpha", "bravo"]
    assert [(skip.alias, skip.code) for skip in result.skipped] == [("charlie", "changed")]
    assert "olga-other" in result.skipped[0].reason
    assert (fresh("charlie").top_p, fresh("charlie").n_ctx) == (None, 4096)


@pytest.mark.parametrize(("values", "field"), [({"temperature": 5}, "temperature"), ({"n_ctx": 64}, "n_ctx"),
                                               ({"bogus": 1}, "bogus"), ({"top_p": "x"}, "top_p")])  # fmt: skip
def test_a_bad_value_is_refused_naming_the_field_and_nothing_changes(trio, editor, values, field):
    generated()
    for names in (["alpha", "bravo"], ["acme/Gen-GGUF:Q4_K_M"]):  # refused even when every alias would be skipped
        with pytest.raises(ValidationError) as refused:
            alias_bulk_apply(action=BulkAction.SET, selection=bulk_selection(names=names), values=values, by=editor)
        assert field in refused.value.message_dict
    assert set(Alias.objects.values_list("version", flat=True)) == {1}
    assert not AuditEntry.objects.filter(action="update").exists()


def test_a_value_one_alias_refuses_undoes_the_whole_action(editor):
    make("aa-wide", by=editor)
    make("bb-narrow", by=editor, n_ctx=1024)

    with pytest.raises(ValidationError) as refused:
        alias_bulk_apply(
            action=BulkAction.SET, selection=bulk_selection(names=["aa-wide", "bb-narrow"]),
            values={"max_tokens": 2048}, by=editor,
        )  # fmt: skip

    assert "bb-narrow" in " ".join(refused.value.message_dict["max_tokens"])
    assert fresh("aa-wide").max_tokens is None and fresh("aa-wide").version == 1  # the first one was undone too
    assert not AliasChange.objects.filter(action="update").exists()


def test_a_filter_selects_what_the_list_api_shows_for_the_same_search(editor, client_for):
    for number in range(6):
        make(f"long-{number}", by=editor, n_ctx=8192 if number % 2 else 2048)
    search = "long n_ctx:>=8192"
    listed = client_for(editor).get("/api/models", {"search": search}).json()["data"]

    selection = bulk_selection(filters={"search": search})

    assert sorted(alias.alias for alias in selection.aliases) == sorted(row["alias"] for row in listed)
    assert len(listed) == 3


# --- the list page ---------------------------------------------------------------------------------------------


def test_editors_see_the_boxes_and_the_bar_and_readers_do_not(trio, client_for, editor, viewer, operator):
    page = client_for(editor).get("/aliases/").content.decode()
    assert page.count("data-bulk-row") == 3 and 'id="alias-bulk"' in page and 'value="1:alpha"' in page
    for reader in (viewer, operator):
        page = client_for(reader).get("/aliases/").content.decode()
        assert "data-bulk-row" not in page and "alias-bulk" not in page and "data-bulk-page" not in page


def test_the_bar_comes_with_the_htmx_fragment_carrying_its_filters(trio, editor_client):
    fragment = editor_client.get("/aliases/", {"q": "bra"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    assert 'id="alias-bulk"' in fragment and 'name="q" value="bra"' in fragment
    assert 'data-bulk-total="1"' in fragment and 'name="rendered_at"' in fragment


@pytest.mark.parametrize("method", ["get", "put"])
def test_the_bulk_page_takes_only_posts(editor_client, method):
    assert getattr(editor_client, method)(BULK_PAGE).status_code == 405


def test_readers_may_not_post_bulk_actions(trio, client_for, viewer, operator):
    for reader in (viewer, operator):
        response = client_for(reader).post(BULK_PAGE, {"action": "delete", "selected": ["1:alpha"], "confirm": "1"})
        assert response.status_code == 403
    assert Alias.objects.count() == 3


def test_set_on_ticked_rows_returns_to_the_list_as_it_was_with_what_changed(trio, editor_client):
    generated()
    back = "/aliases/?q=a&page=1&sort=alias"
    response = editor_client.post(BULK_PAGE, {
        "action": "set", "field": "temperature", "value": "0.7", "next": back,
        "selected": ["1:alpha", "1:charlie", "1:acme/Gen-GGUF:Q4_K_M"],
    })  # fmt: skip

    assert response.status_code == 302 and response["Location"] == back
    said = shown_messages(response)
    assert any(text.startswith("Set temperature to 0.7 on 2 aliases: alpha, charlie") for text in said), said
    assert any("Skipped 1 alias: acme/Gen-GGUF:Q4_K_M (read-only" in text for text in said), said
    assert (fresh("alpha").temperature, fresh("bravo").temperature, fresh("charlie").temperature) == (0.7, None, 0.7)


def test_a_row_changed_since_the_page_was_shown_is_skipped_on_the_page(trio, editor_client, make_user):
    alias_update(alias=trio[0], data={"temperature": 1.9}, expected_version=1, by=make_user("editor", "olga-other"))

    response = editor_client.post(BULK_PAGE, {"action": "clear", "field": "temperature",
                                              "selected": ["1:alpha", "1:bravo"]})  # fmt: skip

    said = " ".join(shown_messages(response))
    assert "Skipped 1 alias: alpha (changed by olga-other" in said
    assert fresh("alpha").temperature == 1.9


def test_select_across_applies_to_every_match_on_every_page(editor, editor_client):
    for number in range(35):
        make(f"hit-{number:02d}", by=editor)
    make("miss", by=editor)
    preset = preset_create(data={"name": "cool", "temperature": 0.2}, by=editor)
    page = editor_client.get("/aliases/", {"q": "hit", "per_page": 10}).content.decode()
    rendered_at = page.split('name="rendered_at" value="', 1)[1].split('"', 1)[0]

    response = editor_client.post(BULK_PAGE, {
        "action": "apply_preset", "preset": preset.name, "select_across": "1", "q": "hit",
        "rendered_at": rendered_at, "selected": ["1:hit-00"],
    })  # fmt: skip

    assert response.status_code == 302
    assert Alias.objects.filter(alias__startswith="hit-", temperature=0.2, version=2).count() == 35
    assert fresh("miss").temperature is None
    assert any("Applied preset cool to 35 aliases" in text for text in shown_messages(response))


def test_select_across_without_the_page_time_changes_nothing(trio, editor_client):
    response = editor_client.post(BULK_PAGE, {"action": "set", "field": "top_p", "value": "0.5", "select_across": "1"})
    assert "Nothing was changed" in " ".join(shown_messages(response))
    assert not Alias.objects.filter(top_p=0.5).exists()


def test_a_bad_value_on_the_page_names_the_field_and_changes_nothing(trio, editor_client):
    response = editor_client.post(BULK_PAGE, {"action": "set", "field": "temperature", "value": "7",
                                              "selected": ["1:alpha", "1:bravo"]})  # fmt: skip
    said = " ".join(shown_messages(response))
    assert response.status_code == 302 and "Nothing was changed: temperature:" in said
    assert not Alias.objects.filter(temperature__isnull=False).exists()


def test_delete_asks_first_listing_the_aliases_then_deletes_them(trio, editor_client):
    generated()
    chosen = {"action": "delete", "selected": ["1:alpha", "1:bravo", "1:acme/Gen-GGUF:Q4_K_M"], "next": "/aliases/?q=a"}

    confirm = editor_client.post(BULK_PAGE, chosen)

    assert confirm.status_code == 200 and Alias.objects.count() == 4
    page = confirm.content.decode()
    assert "Delete 2 aliases?" in page and "acme/Gen-GGUF:Q4_K_M" in page
    listed = page.split('data-testid="bulk-delete-list"', 1)[1].split("</ul>", 1)[0]
    assert "alpha" in listed and "bravo" in listed and "charlie" not in listed and "Gen-GGUF" not in listed
    assert 'name="confirm" value="1"' in page and 'value="1:alpha"' in page

    done = editor_client.post(BULK_PAGE, {**chosen, "confirm": "1"})

    assert done.status_code == 302 and done["Location"] == "/aliases/?q=a"
    assert sorted(Alias.objects.values_list("alias", flat=True)) == ["acme/Gen-GGUF:Q4_K_M", "charlie"]


def test_export_from_the_page_downloads_the_ticked_aliases(trio, editor_client):
    response = editor_client.post(BULK_PAGE, {"action": "export", "format": "json",
                                              "selected": ["1:alpha", "1:charlie"]})  # fmt: skip
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    exported = json.loads(b"".join(response.streaming_content))
    assert [row["alias"] for row in exported] == ["alpha", "charlie"]


def test_nothing_ticked_says_so(trio, editor_client):
    response = editor_client.post(BULK_PAGE, {"action": "set", "field": "top_p", "value": "0.5"})
    assert "Nothing was selected" in " ".join(shown_messages(response))


# --- the API -------------------------------------------------------------------------------------------------------


def test_api_set_answers_what_changed_and_what_was_skipped(trio, editor_client):
    generated()
    response = post_json(editor_client, {"action": "set", "aliases": ["alpha", "acme/Gen-GGUF:Q4_K_M", "ghost"],
                                         "values": {"temperature": 0.4, "stop": ["</s>"]}})  # fmt: skip

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["changed"] == ["alpha"]
    assert {(skip["alias"], skip["code"]) for skip in body["skipped"]} == {
        ("acme/Gen-GGUF:Q4_K_M", "read_only"), ("ghost", "not_found")}  # fmt: skip
    assert all(skip["reason"] for skip in body["skipped"])
    assert body["counts"] == {"selected": 3, "changed": 1, "unchanged": 0, "skipped": 2}
    assert (fresh("alpha").temperature, fresh("alpha").stop) == (0.4, ["</s>"])


def test_api_filter_means_what_the_list_search_means(editor, editor_client):
    make("big-one", by=editor, n_ctx=8192)
    make("small-one", by=editor, n_ctx=2048)
    response = post_json(editor_client, {"action": "clear", "filter": {"search": "one n_ctx:>=8192"},
                                         "values": {"n_ctx": None}})  # fmt: skip
    assert response.json()["changed"] == ["big-one"]
    assert (fresh("big-one").n_ctx, fresh("small-one").n_ctx) == (None, 2048)


def test_api_concurrency_tokens_skip_aliases_changed_since(trio, editor_client, make_user):
    read_at = timezone.now().isoformat()
    alias_update(alias=trio[0], data={"top_p": 0.1}, expected_version=1, by=make_user("editor", "olga-other"))

    by_version = post_json(editor_client, {"action": "set", "aliases": ["alpha", "bravo"], "values": {"top_p": 0.6},
                                           "expected": {"alpha": 1, "bravo": 1}}).json()  # fmt: skip
    by_time = post_json(editor_client, {"action": "apply_preset", "filter": {}, "preset": "precise",
                                        "unchanged_since": read_at}).json()  # fmt: skip

    assert by_version["changed"] == ["bravo"] and by_version["skipped"][0]["alias"] == "alpha"
    assert {skip["alias"] for skip in by_time["skipped"]} == {"alpha", "bravo"}  # bravo was just saved, too
    assert by_time["changed"] == ["charlie"]
    assert fresh("alpha").top_p == 0.1


def test_api_apply_preset_and_delete(trio, editor_client):
    preset_create(data={"name": "cool", "temperature": 0.2}, by=None)
    assert post_json(editor_client, {"action": "apply_preset", "aliases": ["alpha"], "preset": "COOL"}).json()[
        "changed"
    ] == ["alpha"]
    assert fresh("alpha").temperature == 0.2
    deleted = post_json(editor_client, {"action": "delete", "aliases": ["alpha", "bravo"]}).json()
    assert deleted["changed"] == ["alpha", "bravo"] and list(Alias.objects.values_list("alias", flat=True)) == [
        "charlie"
    ]


def test_api_export_answers_the_export_document(trio, editor_client, viewer_client):
    response = post_json(editor_client, {"action": "export", "aliases": ["charlie", "alpha"]})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    exported = json.loads(b"".join(response.streaming_content))
    expected = viewer_client.get("/api/models/export", {"format": "json", "search": "a"})
    assert [row["alias"] for row in exported] == ["alpha", "charlie"]
    assert exported == [row for row in json.loads(b"".join(expected.streaming_content))
                        if row["alias"] in ("alpha", "charlie")]  # fmt: skip
    csv = post_json(editor_client, {"action": "export", "filter": {"search": "bravo"}, "format": "csv"})
    assert csv["Content-Type"].startswith("text/csv") and b"bravo" in b"".join(csv.streaming_content)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"action": "rename", "aliases": ["alpha"]}, "action"),
        ({"action": "set", "aliases": ["alpha"], "values": {"bogus": 1}}, "bogus"),
        ({"action": "set", "aliases": ["alpha"], "values": {"temperature": 9}}, "temperature"),
        ({"action": "set", "aliases": ["alpha"], "values": {"temperature": "0.5"}}, "temperature"),
        ({"action": "clear", "aliases": ["alpha"], "values": ["bogus"]}, "bogus"),
        ({"action": "set", "aliases": ["alpha"]}, "values"),
        ({"action": "set", "aliases": ["alpha"], "filter": {}, "values": {"top_p": 0.5}}, "filter"),
        ({"action": "set", "values": {"top_p": 0.5}}, "aliases"),
        ({"action": "delete", "aliases": ["alpha"], "values": {"top_p": 0.5}}, "values"),
        ({"action": "apply_preset", "aliases": ["alpha"]}, "preset"),
        ({"action": "set", "filter": {"search": "n_ctx:lots"}, "values": {"top_p": 0.5}}, "search"),
        ({"action": "set", "filter": {"page": 2}, "values": {"top_p": 0.5}}, "page"),
        ({"action": "set", "aliases": ["alpha"], "values": {"top_p": 0.5}, "expected": {"alpha": "1"}}, "expected"),
    ],
)
def test_api_bad_input_is_a_400_naming_the_field_and_changes_nothing(trio, editor_client, body, param):
    error = assert_error(post_json(editor_client, body), 400, "invalid_request_error")
    assert error["param"] == param, error
    assert set(Alias.objects.values_list("version", flat=True)) == {1}


def test_api_unknown_preset_is_a_404(trio, editor_client):
    response = post_json(editor_client, {"action": "apply_preset", "aliases": ["alpha"], "preset": "nope"})
    assert_error(response, 404, "not_found_error", code="preset_not_found", param="preset")


@pytest.mark.parametrize("action", ["set", "delete", "export"])
def test_api_readers_get_403(trio, viewer_client, operator_client, action):
    body = {"action": action, "aliases": ["alpha"], **({"values": {"top_p": 0.5}} if action == "set" else {})}
    for client in (viewer_client, operator_client):
        assert_error(post_json(client, body), 403, "forbidden_error")
    assert Alias.objects.count() == 3 and fresh("alpha").top_p is None


def test_api_bulk_is_post_only(editor_client):
    assert_error(editor_client.get(API), 405, "invalid_request_error")


def test_the_boxes_and_the_bar_cost_the_same_queries_whatever_the_page_size(editor, editor_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    AliasFactory.create_batch(60)
    counts = []
    editor_client.get("/aliases/")  # the signed-in user and session into the cache (CACHE_URL), as on later pages
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            page = editor_client.get("/aliases/", {"per_page": size})
        assert page.content.decode().count("data-bulk-row") == min(size, 60)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
