"""Version history: every saved version whole, compare, revert, deleted aliases and restore (pages and API)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from aliases.models import Alias, AliasChange
from aliases.services import (
    AliasReadOnlyError,
    AliasRestoreError,
    alias_create,
    alias_delete,
    alias_restore,
    alias_revert,
    alias_update,
)
from config.audit.models import AuditEntry
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db

BASE = {"alias": "hist", "repo": "acme/Hist-GGUF", "filename": "hist.Q4_K_M.gguf"}


@pytest.fixture
def history(editor, make_user):
    """Three versions: created, temperature set by another editor, then n_ctx and temperature changed."""
    other = make_user("editor", "olga-other")
    alias = alias_create(data=BASE, by=editor)
    alias = alias_update(alias=alias, data={"temperature": 0.4}, expected_version=1, by=other)
    return alias_update(alias=alias, data={"temperature": 1.2, "n_ctx": 4096}, expected_version=2, by=editor)


# --- services ----------------------------------------------------------------------------------------------------


def test_revert_saves_a_new_version_equal_to_the_old_one(history, admin_user):
    reverted = alias_revert(alias=history, version=2, by=admin_user)
    reverted.refresh_from_db()
    assert (reverted.version, reverted.temperature, reverted.n_ctx) == (4, 0.4, None)
    record = AliasChange.objects.get(alias=reverted, version=4)
    assert record.action == "revert"
    assert record.changes == {"temperature": [1.2, 0.4], "n_ctx": [4096, None]}
    entry = AuditEntry.objects.filter(kind="alias", action="revert").get()
    assert (entry.actor, entry.before["temperature"], entry.after["temperature"]) == (admin_user, 1.2, 0.4)


def test_revert_runs_the_alias_rules(history, editor):
    # A version stored before a rule was checked (here: out of bounds) is not brought back unchecked.
    record = AliasChange.objects.get(alias=history, version=1)
    record.snapshot = {**record.snapshot, "temperature": 7.5}
    record.save()
    with pytest.raises(ValidationError) as excinfo:
        alias_revert(alias=history, version=1, by=editor)
    assert "temperature" in str(excinfo.value)
    history.refresh_from_db()
    assert history.version == 3


def test_revert_of_a_generated_alias_is_refused(alias_factory, editor):
    generated = alias_factory(alias="acme/Tiny-GGUF:Q4_K_M", source=Alias.Source.MODEL, repo="acme/Tiny-GGUF")
    with pytest.raises(AliasReadOnlyError):
        alias_revert(alias=generated, version=1, by=editor)


def test_a_deleted_alias_is_restored_whole_with_its_history(history, editor):
    alias_delete(alias=history, by=editor)
    assert not Alias.objects.filter(alias="hist").exists()
    restored = alias_restore(name="HIST", by=editor)
    assert (restored.alias, restored.temperature, restored.n_ctx, restored.version) == ("hist", 1.2, 4096, 4)
    assert list(AliasChange.objects.filter(alias=restored).order_by("pk").values_list("action", flat=True)) == [
        "create",
        "update",
        "update",
        "delete",
        "restore",
    ]
    assert AuditEntry.objects.filter(kind="alias", action="restore", object_repr="hist").exists()
    with pytest.raises(AliasRestoreError) as excinfo:
        alias_restore(name="hist", by=editor)
    assert excinfo.value.code == "not_deleted"


def test_restore_is_refused_when_the_name_is_taken_again_and_offers_another_name(history, editor):
    alias_delete(alias=history, by=editor)
    alias_create(data={**BASE, "filename": "other.Q4_K_M.gguf"}, by=editor)
    with pytest.raises(AliasRestoreError) as excinfo:
        alias_restore(name="hist", by=editor)
    assert excinfo.value.code == "name_taken"
    assert "restore the deleted one under another name" in str(excinfo.value)
    restored = alias_restore(name="hist", by=editor, new_name="hist-old")
    assert (restored.alias, restored.temperature) == ("hist-old", 1.2)


# --- pages -------------------------------------------------------------------------------------------------------


def test_history_page_lists_versions_and_compares_two(client_for, viewer, history):
    url = reverse("aliases:history", args=["hist"])
    detail = client_for(viewer).get(reverse("aliases:detail", args=["hist"])).content.decode()
    assert f'href="{url}"' in detail
    content = client_for(viewer).get(url, {"a": "1", "b": "3"}).content.decode()
    assert content.count('<tr data-version="') == 3
    assert "olga-other" in content
    diff = content[content.index('data-testid="version-diff"') : content.index('data-testid="version-list"')]
    assert "Version 1 compared with version 3" in diff
    assert diff.count("data-changed") == 2  # temperature and n_ctx
    # Viewers read history but get no revert button.
    assert "Revert to this version" not in content


def test_history_lists_only_changes_a_person_can_see(client_for, viewer, history):
    content = client_for(viewer).get(reverse("aliases:history", args=["hist"])).content.decode()
    created = content[content.index('<tr data-version="1"') :]
    created = created[: created.index("</tr>")]
    assert "hist.Q4_K_M.gguf" in created
    # The create records the empty stop list and user as set from nothing; that is not a change to show.
    assert "<strong>stop</strong>" not in created and "<strong>user</strong>" not in created
    assert "— → —" not in content


def test_history_page_says_when_the_versions_to_compare_are_not_on_record(client_for, viewer, history):
    content = client_for(viewer).get(reverse("aliases:history", args=["hist"]), {"a": "1", "b": "99"})
    assert "Pick two saved versions" in content.content.decode()


def test_editor_reverts_through_the_confirmation(client_for, editor, history):
    client = client_for(editor)
    url = reverse("aliases:revert", args=["hist", 1])
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Revert hist to version 1?" in confirm.content.decode()
    response = client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("aliases:history", args=["hist"])
    assert "Reverted hist to version 1; saved as version 4." in response.content.decode()
    history.refresh_from_db()
    assert (history.temperature, history.n_ctx, history.version) == (None, None, 4)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_readers_may_not_revert_or_restore(client_for, make_user, history, editor, role):
    client = client_for(make_user(role, f"someone-{role}"))
    assert client.get(reverse("aliases:history", args=["hist"])).status_code == 200
    assert client.post(reverse("aliases:revert", args=["hist", 1])).status_code == 403
    alias_delete(alias=history, by=editor)
    assert client.get(reverse("aliases:deleted")).status_code == 403
    assert client.post(reverse("aliases:restore", args=["hist"])).status_code == 403
    assert not Alias.objects.filter(alias="hist").exists()


def test_deleted_page_restores_and_refuses_a_taken_name(client_for, editor, history):
    alias_delete(alias=history, by=editor)
    client = client_for(editor)
    listing = client.get(reverse("aliases:deleted")).content.decode()
    assert '<tr data-alias="hist">' in listing
    response = client.post(reverse("aliases:restore", args=["hist"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("aliases:detail", args=["hist"])
    assert Alias.objects.get(alias="hist").temperature == 1.2
    alias_delete(alias=Alias.objects.get(alias="hist"), by=editor)
    alias_create(data=BASE, by=editor)
    listing = client.get(reverse("aliases:deleted")).content.decode()
    assert "The name is taken by another alias now." in listing
    refused = client.post(reverse("aliases:restore", args=["hist"]), follow=True)
    assert "exists again; restore the deleted one under another name" in refused.content.decode()
    client.post(reverse("aliases:restore", args=["hist"]), {"new_name": "hist-2"})
    assert Alias.objects.get(alias="hist-2").n_ctx == 4096


# --- API ---------------------------------------------------------------------------------------------------------


def test_api_lists_versions_newest_first_with_the_alias_as_it_was(viewer_client, history):
    body = viewer_client.get("/api/models/hist/versions").json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 30)
    assert [row["version"] for row in body["data"]] == [3, 2, 1]
    oldest = body["data"][-1]
    assert (oldest["action"], oldest["changed_by"]) == ("create", "edith-editor")
    assert oldest["alias"]["request_params"]["temperature"] is None
    assert body["data"][1]["alias"]["request_params"]["temperature"] == 0.4
    assert body["data"][0]["alias"]["context_params"]["n_ctx"] == 4096
    assert body["data"][0]["changes"] == {"temperature": [0.4, 1.2], "n_ctx": [None, 4096]}
    assert_error(viewer_client.get("/api/models/nope/versions"), 404, "not_found_error")


def test_api_revert_and_its_roles(client_for, viewer, editor, history):
    assert_error(client_for(viewer).post("/api/models/hist/versions/2/revert"), 403, "forbidden_error")
    response = client_for(editor).post("/api/models/hist/versions/2/revert")
    assert response.status_code == 200
    assert (response.json()["version"], response.json()["request_params"]["temperature"]) == (4, 0.4)
    assert_error(client_for(editor).post("/api/models/hist/versions/9/revert"), 404, "not_found_error")


def test_api_deleted_list_and_restore(client_for, viewer, editor, history):
    alias_delete(alias=history, by=editor)
    listing = client_for(viewer).get("/api/models/deleted").json()
    assert [(row["name"], row["version"], row["name_taken"]) for row in listing["data"]] == [("hist", 3, False)]
    assert listing["data"][0]["alias"]["repo"] == "acme/Hist-GGUF"
    assert_error(client_for(viewer).post("/api/models/deleted/hist/restore"), 403, "forbidden_error")
    alias_create(data=BASE, by=editor)
    taken = client_for(editor).post("/api/models/deleted/hist/restore", content_type="application/json")
    assert_error(taken, 409, "conflict_error", code="name_taken")
    restored = client_for(editor).post(
        "/api/models/deleted/hist/restore", {"new_name": "hist-back"}, content_type="application/json"
    )
    assert restored.status_code == 201
    assert restored.json()["alias"] == "hist-back"
    assert restored["Location"] == "/api/models/hist-back"
    assert client_for(viewer).get("/api/models/deleted").json()["total"] == 0
    assert_error(
        client_for(editor).post("/api/models/deleted/hist/restore", content_type="application/json"),
        404,
        "not_found_error",
    )


def test_deleted_list_queries_do_not_grow_with_its_rows(client_for, editor, django_assert_max_num_queries):
    for number in range(6):
        alias_delete(alias=alias_create(data={**BASE, "alias": f"gone-{number}"}, by=editor), by=editor)
    client = client_for(editor)
    client.get("/api/models/deleted")  # the session and permissions are cached from here on
    # Session, user, permissions, count, page, the names taken now: not one per row.
    with django_assert_max_num_queries(8):
        body = client.get("/api/models/deleted").json()
    assert body["total"] == 6
    with django_assert_max_num_queries(8):
        page = client.get(reverse("aliases:deleted"))
    assert page.content.decode().count("<tr data-alias=") == 6
