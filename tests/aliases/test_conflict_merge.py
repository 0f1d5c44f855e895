"""Edit conflicts merge by field: disjoint changes combine, only fields both editors changed need a choice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from aliases.models import Alias, AliasChange
from aliases.services import AliasVersionConflict, alias_create, alias_update, alias_update_merged
from tests.aliases.test_pages import edit_data
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(editor):
    return alias_create(
        data={"alias": "shared", "repo": "acme/Shared-GGUF", "filename": "shared.Q4_K_M.gguf", "temperature": 0.7},
        by=editor,
    )


@pytest.fixture
def other(make_user):
    return make_user("editor", "olga-other")


def test_disjoint_changes_merge_and_keep_theirs(shared, editor, other):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    mine = {**shared.values(), "top_p": 0.9}  # loaded at version 1: temperature still 0.7 here
    result = alias_update_merged(alias=shared, data=mine, base_version=1, by=editor)
    assert (result.applied, result.kept_theirs) == (["top_p"], ["temperature"])
    shared.refresh_from_db()
    assert (shared.temperature, shared.top_p, shared.version) == (0.2, 0.9, 3)
    assert AliasChange.objects.get(alias=shared, version=3).changes == {"top_p": [None, 0.9]}


def test_the_same_field_changed_by_both_needs_a_choice(shared, editor, other):
    alias_update(alias=shared, data={"temperature": 0.2, "n_ctx": 4096}, expected_version=1, by=other)
    mine = {**shared.values(), "temperature": 1.1, "top_p": 0.5}
    with pytest.raises(AliasVersionConflict) as excinfo:
        alias_update_merged(alias=shared, data=mine, base_version=1, by=editor)
    assert excinfo.value.conflicts == ["temperature"]
    shared.refresh_from_db()
    assert (shared.temperature, shared.top_p, shared.version) == (0.2, None, 2)
    result = alias_update_merged(
        alias=shared, data=mine, base_version=1, by=editor, resolutions={"temperature": "theirs"}
    )
    assert result.alias.version == 3
    shared.refresh_from_db()
    assert (shared.temperature, shared.top_p, shared.n_ctx) == (0.2, 0.5, 4096)


def test_both_changing_a_field_to_the_same_value_is_no_conflict(shared, editor, other):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    result = alias_update_merged(alias=shared, data={**shared.values(), "temperature": 0.2}, base_version=1, by=editor)
    assert result.alias.version == 2  # nothing left to change


def test_without_the_base_version_on_record_every_difference_needs_a_choice(alias_factory, editor):
    alias = alias_factory(alias="legacy", temperature=0.3, version=5)  # no change records
    with pytest.raises(AliasVersionConflict) as excinfo:
        alias_update_merged(alias=alias, data={**alias.values(), "top_p": 0.4}, base_version=4, by=editor)
    assert (excinfo.value.conflicts, excinfo.value.mergeable) == (["top_p"], False)


# --- page --------------------------------------------------------------------------------------------------------


def test_page_merges_disjoint_changes_and_says_which_of_theirs_were_kept(client_for, editor, other, shared):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    response = client_for(editor).post(
        reverse("aliases:edit", args=["shared"]), edit_data(shared, top_p="0.9", version="1"), follow=True
    )
    assert response.status_code == 200
    assert (
        "Saved alias shared, merged with changes saved meanwhile: kept theirs for temperature; applied yours for "
        "top_p." in response.content.decode()
    )
    shared.refresh_from_db()
    assert (shared.temperature, shared.top_p) == (0.2, 0.9)


def test_page_asks_per_field_and_keep_theirs_keeps_it(client_for, editor, other, shared):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    client = client_for(editor)
    url = reverse("aliases:edit", args=["shared"])
    data = edit_data(shared, temperature="1.5", top_p="0.9", version="1")
    asked = client.post(url, data)
    assert asked.status_code == 409
    content = asked.content.decode()
    assert 'form="alias-form" name="resolve_temperature"' in content
    assert 'name="resolve_top_p"' not in content
    assert client.post(url, {**data, "resolve_temperature": "theirs"}).status_code == 302
    shared.refresh_from_db()
    assert (shared.temperature, shared.top_p, shared.version) == (0.2, 0.9, 3)


def test_viewer_cannot_post_a_merge(client_for, viewer, shared):
    response = client_for(viewer).post(reverse("aliases:edit", args=["shared"]), edit_data(shared, top_p="0.9"))
    assert response.status_code == 403
    shared.refresh_from_db()
    assert shared.top_p is None


# --- API ---------------------------------------------------------------------------------------------------------


def _put(client, body, query=""):
    return client.put(f"/api/models/shared{query}", data=body, content_type="application/json")


def _body(alias: Alias, **params) -> dict:
    request = {"temperature": alias.temperature, "top_p": alias.top_p, **params}
    return {
        "alias": alias.alias,
        "repo": alias.repo,
        "filename": alias.filename,
        "request_params": request,
        "version": 1,
    }


def test_api_stale_put_is_409_with_the_fields_in_conflict(editor_client, other, shared):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    response = _put(editor_client, _body(shared, temperature=1.5, top_p=0.9))
    error = assert_error(response, 409, "conflict_error", code="version_conflict")
    assert (error["changed_fields"], error["conflict_fields"]) == (["temperature"], ["temperature"])
    # Disjoint, but without ?merge=true a stale version is still refused, as before.
    error = assert_error(_put(editor_client, _body(shared, top_p=0.9)), 409, "conflict_error")
    assert error["conflict_fields"] == []
    shared.refresh_from_db()
    assert (shared.top_p, shared.version) == (None, 2)


def test_api_merge_true_applies_disjoint_changes(editor_client, other, shared):
    alias_update(alias=shared, data={"temperature": 0.2}, expected_version=1, by=other)
    response = _put(editor_client, _body(shared, top_p=0.9), "?merge=true")
    assert response.status_code == 200
    assert response.json()["request_params"]["temperature"] == 0.2
    assert (response.json()["request_params"]["top_p"], response.json()["version"]) == (0.9, 3)
    refused = _put(editor_client, _body(shared, temperature=1.5), "?merge=true")
    assert assert_error(refused, 409, "conflict_error")["conflict_fields"] == ["temperature"]
    assert_error(_put(editor_client, _body(shared), "?merge=maybe"), 400, "invalid_request_error", param="merge")
