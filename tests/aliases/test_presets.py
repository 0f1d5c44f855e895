"""Parameter presets: the model and its bounds (the alias's), the services, the pages, the API and "apply"."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from aliases.models import Alias
from aliases.presets.models import Preset
from aliases.presets.services import (
    PresetReadOnlyError,
    preset_apply,
    preset_create,
    preset_delete,
    preset_update,
    preset_values,
)
from aliases.services import alias_create
from config.audit.models import AuditEntry
from tests.api_errors import assert_error
from tests.factories import AliasFactory

pytestmark = pytest.mark.django_db

API_LIST = "/api/presets"


def api_detail(name: str) -> str:
    return f"/api/presets/{name}"


def make_preset(by=None, **values) -> Preset:
    return preset_create(data={"name": "mine", **values}, by=by)


# --- model and bounds --------------------------------------------------------------------------------------------


def test_builtin_presets_exist_and_pass_the_alias_rules():
    builtins = Preset.objects.filter(builtin=True)
    assert {"precise", "balanced", "creative", "long-context"} <= {p.name for p in builtins}
    for preset in builtins:
        preset.full_clean()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("top_p", -0.1),
        ("n_ctx", 64),
        ("n_parallel", 0),
        ("n_threads", 5000),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("seed", 2**63),
    ],
)
def test_a_value_the_alias_refuses_is_refused_in_a_preset_naming_the_field(field, value):
    with pytest.raises(ValidationError) as refused:
        Alias(alias="x", repo="a/b", filename="m.gguf", **{field: value}).full_clean()
    assert field in refused.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        make_preset(**{field: value})
    assert list(excinfo.value.message_dict) == [field]
    assert excinfo.value.message_dict[field] == refused.value.message_dict[field]
    assert not Preset.objects.filter(name="mine").exists()


def test_the_cross_field_rules_of_aliases_hold_in_a_preset():
    with pytest.raises(ValidationError) as excinfo:
        make_preset(n_ctx=1024, max_tokens=2048)
    assert "max_tokens" in excinfo.value.message_dict


def test_a_preset_holds_any_subset_and_only_what_it_sets_is_applied(editor):
    preset = make_preset(by=editor, temperature=0.1, n_ctx=8192, stop=[])
    assert preset_values(preset) == {"temperature": 0.1, "n_ctx": 8192}


def test_names_are_unique_regardless_of_case():
    make_preset()
    with pytest.raises(ValidationError) as excinfo:
        preset_create(data={"name": "MINE"}, by=None)
    assert "name" in excinfo.value.message_dict


# --- services ----------------------------------------------------------------------------------------------------


def test_create_update_delete_are_audited(editor):
    preset = make_preset(by=editor, temperature=0.4)
    preset = preset_update(preset=preset, data={"name": "mine", "top_p": 0.3}, expected_version=1, by=editor)
    # Like alias_update, only the fields given change.
    assert preset.version == 2 and preset.temperature == 0.4 and preset.top_p == 0.3
    preset_delete(preset=preset, by=editor)
    entries = AuditEntry.objects.filter(kind="preset").order_by("pk")
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert entries[1].before["temperature"] == 0.4 and entries[1].after["top_p"] == 0.3
    assert all(e.actor_name == editor.username for e in entries)


def test_builtin_presets_are_read_only(editor):
    precise = Preset.objects.get(name="precise")
    with pytest.raises(PresetReadOnlyError):
        preset_update(preset=precise, data={"name": "precise", "temperature": 1.0}, expected_version=1, by=editor)
    with pytest.raises(PresetReadOnlyError):
        preset_delete(preset=precise, by=editor)
    assert Preset.objects.get(name="precise").temperature == 0.2


def test_preset_apply_changes_only_the_preset_fields_with_a_new_version(editor):
    alias = AliasFactory(top_p=0.8, n_threads=4)
    preset = make_preset(temperature=1.1, n_ctx=4096)
    applied = preset_apply(alias=alias, preset=preset, by=editor)
    applied.refresh_from_db()
    assert (applied.temperature, applied.n_ctx, applied.top_p, applied.n_threads) == (1.1, 4096, 0.8, 4)
    assert applied.version == alias.version + 1
    assert AuditEntry.objects.filter(kind="alias", action="update", object_id=str(alias.pk)).exists()


def test_preset_apply_is_checked_against_the_alias_values(editor):
    alias = AliasFactory(n_ctx=1024)
    preset = make_preset(max_tokens=4096)
    with pytest.raises(ValidationError) as excinfo:
        preset_apply(alias=alias, preset=preset, by=editor)
    assert "max_tokens" in excinfo.value.message_dict
    alias.refresh_from_db()
    assert alias.max_tokens is None


# --- pages -------------------------------------------------------------------------------------------------------


def test_list_shows_builtins_with_a_badge_and_searches(viewer_client):
    response = viewer_client.get(reverse("presets:list"))
    assert response.status_code == 200
    assert b"built-in" in response.content and b"long-context" in response.content
    response = viewer_client.get(reverse("presets:list"), {"q": "creat"})
    assert b'data-preset="creative"' in response.content and b'data-preset="precise"' not in response.content


def test_the_list_answers_htmx_with_the_table_only(viewer_client):
    response = viewer_client.get(reverse("presets:list"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'id="preset-table"' in response.content and b"<html" not in response.content


def test_detail_shows_values_and_new_alias_from_preset_for_editors(editor_client, viewer_client):
    url = reverse("presets:detail", args=["creative"])
    page = editor_client.get(url)
    assert page.status_code == 200 and b'data-testid="builtin-badge"' in page.content
    assert b"?preset=creative" in page.content
    assert b"?preset=creative" not in viewer_client.get(url).content


def test_editor_creates_edits_and_deletes_a_preset_by_pages(editor_client):
    response = editor_client.post(reverse("presets:create"), {"name": "quick", "temperature": "0.3", "stop": "END"})
    assert response.status_code == 302
    preset = Preset.objects.get(name="quick")
    assert (preset.temperature, preset.stop) == (0.3, ["END"])
    response = editor_client.post(
        reverse("presets:edit", args=["quick"]), {"name": "quick", "temperature": "0.6", "version": "1"}
    )
    assert response.status_code == 302
    preset.refresh_from_db()
    assert (preset.temperature, preset.stop, preset.version) == (0.6, None, 2)
    assert editor_client.get(reverse("presets:delete", args=["quick"])).status_code == 200
    response = editor_client.post(reverse("presets:delete", args=["quick"]), {"version": "2"})
    assert response.status_code == 302 and not Preset.objects.filter(name="quick").exists()


def test_a_refused_value_is_shown_next_to_its_field(editor_client):
    response = editor_client.post(reverse("presets:create"), {"name": "hot", "temperature": "3"})
    assert response.status_code == 200
    assert response.context["form"].errors["temperature"]
    assert not Preset.objects.filter(name="hot").exists()


def test_a_stale_page_edit_is_refused(editor_client, editor):
    make_preset(by=editor, temperature=0.1)
    preset_update(preset=Preset.objects.get(name="mine"), data={"name": "mine", "temperature": 0.2},
                  expected_version=1, by=editor)  # fmt: skip
    response = editor_client.post(
        reverse("presets:edit", args=["mine"]), {"name": "mine", "temperature": "0.9", "version": "1"}
    )
    assert response.status_code == 409
    assert Preset.objects.get(name="mine").temperature == 0.2


def test_builtin_edit_pages_are_refused_and_offer_a_copy(editor_client):
    response = editor_client.get(reverse("presets:edit", args=["precise"]))
    assert response.status_code == 403 and b"?from=precise" in response.content
    copy = editor_client.get(reverse("presets:create"), {"from": "precise"})
    assert copy.context["form"].initial["temperature"] == 0.2


@pytest.mark.parametrize("client_name", ["viewer_client", "operator_client"])
def test_others_may_read_but_not_write(request, client_name):
    client = request.getfixturevalue(client_name)
    make_preset()
    assert client.get(reverse("presets:detail", args=["mine"])).status_code == 200
    assert client.post(reverse("presets:create"), {"name": "nope"}).status_code == 403
    assert client.post(reverse("presets:edit", args=["mine"]), {"name": "x", "version": "1"}).status_code == 403
    assert client.post(reverse("presets:delete", args=["mine"]), {"version": "1"}).status_code == 403
    assert Preset.objects.filter(name="mine").exists() and not Preset.objects.filter(name="nope").exists()


# --- apply in the alias form -------------------------------------------------------------------------------------


def test_the_alias_form_offers_the_presets(editor_client):
    page = editor_client.get(reverse("aliases:create"))
    assert b'name="preset"' in page.content and b"form-values/" in page.content


def test_form_values_are_what_the_form_inputs_hold(viewer_client):
    make_preset(temperature=0.5, stop=["\n", "END"])
    body = viewer_client.get(reverse("presets:form-values", args=["mine"])).json()
    assert body == {"preset": "mine", "values": {"temperature": "0.5", "stop": "\\n\nEND"}}


def test_apply_without_javascript_fills_the_fields_and_saves_nothing(editor_client, editor):
    alias = alias_create(
        data={"alias": "chat", "repo": "acme/Tiny-GGUF", "filename": "tiny.gguf", "top_p": 0.7}, by=editor
    )
    data = {"alias": "chat", "repo": "acme/Tiny-GGUF", "filename": "tiny.gguf", "snapshot": "main",
            "chat_template": "embedded", "top_p": "0.7", "n_threads": "8", "version": "1",
            "preset": "creative", "apply_preset": "1"}  # fmt: skip
    response = editor_client.post(reverse("aliases:edit", args=["chat"]), data)
    assert response.status_code == 200
    form = response.context["form"]
    assert not form.is_bound
    assert form["temperature"].value() == "1.2" and form["top_p"].value() == "0.95"
    assert form["n_threads"].value() == "8" and form["version"].value() == "1"
    alias.refresh_from_db()
    assert (alias.temperature, alias.top_p, alias.version) == (None, 0.7, 1)


def test_new_alias_from_preset_prefills_the_create_form(editor_client):
    response = editor_client.get(reverse("aliases:create"), {"preset": "long-context"})
    form = response.context["form"]
    assert form["n_ctx"].value() == "32768" and form["n_keep"].value() == "-1"
    assert not Alias.objects.exists()


# --- API ---------------------------------------------------------------------------------------------------------


def test_api_list_envelope_search_and_sort(viewer_client):
    body = viewer_client.get(API_LIST, {"search": "o", "sort": "name", "sort_order": "desc", "page_size": 2}).json()
    assert set(body) == {"data", "total", "page", "page_size"} and body["page_size"] == 2
    names = [p["name"] for p in body["data"]]
    assert names == sorted(names, reverse=True) and len(names) == 2
    assert_error(viewer_client.get(API_LIST, {"sort": "nope"}), 400, "invalid_request_error", param="sort")


def test_api_crud_and_stale_put(editor_client):
    created = editor_client.post(
        API_LIST,
        {"name": "api-one", "request_params": {"temperature": 0.4, "stop": ["END"]}, "context_params": {"n_ctx": 4096}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created["Location"] == api_detail("api-one")
    body = created.json()
    assert body["request_params"]["temperature"] == 0.4 and body["request_params"]["top_p"] is None
    assert body["context_params"]["n_ctx"] == 4096 and body["builtin"] is False and body["version"] == 1
    assert editor_client.get(api_detail("API-ONE")).json()["name"] == "api-one"
    put = editor_client.put(
        api_detail("api-one"), {"name": "api-one", "version": 1, "request_params": {"top_p": 0.2}},
        content_type="application/json",
    )  # fmt: skip
    assert put.status_code == 200 and put.json()["version"] == 2
    assert put.json()["request_params"]["temperature"] is None  # a PUT replaces the whole preset
    stale = editor_client.put(api_detail("api-one"), {"name": "api-one", "version": 1}, content_type="application/json")
    assert_error(stale, 409, "conflict_error", code="version_conflict", param="version")
    assert Preset.objects.get(name="api-one").top_p == 0.2
    assert editor_client.delete(api_detail("api-one")).status_code == 204
    assert_error(editor_client.get(api_detail("api-one")), 404, "not_found_error")


def test_api_refuses_out_of_bounds_values_naming_the_field(editor_client):
    response = editor_client.post(
        API_LIST, {"name": "bad", "context_params": {"n_parallel": 999}}, content_type="application/json"
    )
    error = assert_error(response, 400, "invalid_request_error")
    assert "n_parallel" in (error["param"] or "") or "n_parallel" in error["message"]
    assert not Preset.objects.filter(name="bad").exists()


def test_api_builtins_are_read_only(editor_client):
    assert_error(editor_client.delete(api_detail("precise")), 403, "forbidden_error", code="read_only_preset")
    put = editor_client.put(api_detail("precise"), {"name": "precise", "version": 1}, content_type="application/json")
    assert_error(put, 403, "forbidden_error", code="read_only_preset")


@pytest.mark.parametrize("client_name", ["viewer_client", "operator_client"])
def test_api_others_read_but_may_not_write(request, client_name):
    client = request.getfixturevalue(client_name)
    make_preset()
    assert client.get(api_detail("mine")).status_code == 200
    assert_error(client.post(API_LIST, {"name": "x"}, content_type="application/json"), 403, "forbidden_error")
    assert_error(client.put(api_detail("mine"), {"name": "mine", "version": 1}, content_type="application/json"),
                 403, "forbidden_error")  # fmt: skip
    assert_error(client.delete(api_detail("mine")), 403, "forbidden_error")
    assert Preset.objects.filter(name="mine").exists()


def test_api_anonymous_is_401(client):
    assert_error(client.get(API_LIST), 401, "authentication_error")
