"""Issue 9 item 8: after Duplicate the new alias is shown, row actions, a remembered column picker, names that wrap
at separators only, and "Saved" only when something changed."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from aliases.models import Alias, AliasChange
from aliases.services import alias_create
from config.accounts.models import TablePreference
from config.audit.models import AuditEntry
from tests.aliases.test_pages import edit_data, form_data

pytestmark = pytest.mark.django_db

LIST_URL = reverse("aliases:list")
COLUMNS_URL = reverse("aliases:columns")


def headers(content: str) -> list[str]:
    """The table's column headers, as shown."""
    thead = re.search(r"<thead.*?</thead>", content, re.S).group(0)
    return [re.sub(r"<[^>]+>|[▲▼]", "", cell).strip() for cell in re.findall(r"<th\b.*?</th>", thead, re.S)]


def row_actions(content: str, name: str) -> dict[str, str]:
    """The row's action links: {"edit": href, ...}."""
    row = re.search(rf'<tr data-alias="{re.escape(name)}".*?</tr>', content, re.S).group(0)
    return {action: unescape(href) for href, action in re.findall(r'href="([^"]+)" data-row-action="(\w+)"', row)}


@pytest.fixture
def sample(editor):
    return alias_create(
        data={"alias": "sample", "repo": "acme/Sample-GGUF", "filename": "sample.Q4_K_M.gguf"}, by=editor
    )


# --- Duplicate lands on the new alias ------------------------------------------------------------------------------


def test_duplicate_lands_on_the_new_alias_with_the_way_back(client_for, editor, sample):
    client = client_for(editor)
    came_from = f"{LIST_URL}?q=sam&page=1"
    duplicate_url = row_actions(client.get(came_from).content.decode(), "sample")["duplicate"]
    assert duplicate_url == f"{reverse('aliases:duplicate', args=['sample'])}?{urlencode({'next': came_from})}"
    form = client.get(duplicate_url).content.decode()
    assert f'name="next" value="{came_from}"'.replace("&", "&amp;") in form
    response = client.post(
        reverse("aliases:create"),
        form_data(alias="sample-copy", repo=sample.repo, filename=sample.filename, next=came_from),
    )
    detail = reverse("aliases:detail", args=["sample-copy"])
    assert response["Location"] == f"{detail}?{urlencode({'next': came_from})}"
    page = client.get(response["Location"]).content.decode()
    assert "Created alias sample-copy." in page


# --- row actions ---------------------------------------------------------------------------------------------------


def test_editors_get_edit_duplicate_and_delete_keeping_the_list_page(client_for, editor, sample):
    came_from = f"{LIST_URL}?q=sam&sort=-repo"
    actions = row_actions(client_for(editor).get(came_from).content.decode(), "sample")
    back = urlencode({"next": came_from})
    assert actions == {
        "edit": f"{reverse('aliases:edit', args=['sample'])}?{back}",
        "duplicate": f"{reverse('aliases:duplicate', args=['sample'])}?{back}",
        "delete": f"{reverse('aliases:delete', args=['sample'])}?{back}",
    }


def test_read_only_aliases_can_only_be_duplicated(client_for, editor, alias_factory):
    alias_factory(alias="acme/Tiny-GGUF:Q4_K_M", source=Alias.Source.MODEL, repo="acme/Tiny-GGUF")
    actions = row_actions(client_for(editor).get(LIST_URL).content.decode(), "acme/Tiny-GGUF:Q4_K_M")
    assert list(actions) == ["duplicate"]


def test_readers_get_no_actions_column(client_for, viewer, operator, sample):
    for user in (viewer, operator):
        content = client_for(user).get(LIST_URL).content.decode()
        assert row_actions(content, "sample") == {}
        assert "Actions" not in headers(content)


def test_action_buttons_name_their_alias_for_screen_readers(client_for, editor, sample):
    content = client_for(editor).get(LIST_URL).content.decode()
    assert 'aria-label="Delete sample"' in content and 'aria-label="Actions for sample"' in content


def test_delete_row_action_confirms_then_returns_to_the_list_page(client_for, editor, sample):
    client = client_for(editor)
    came_from = f"{LIST_URL}?q=sam"
    delete_url = row_actions(client.get(came_from).content.decode(), "sample")["delete"]
    confirmation = client.get(delete_url).content.decode()
    assert "Delete alias" in confirmation and Alias.objects.filter(alias="sample").exists()
    assert f'href="{came_from}"' in confirmation  # Cancel goes back to the same list page
    response = client.post(delete_url, {"version": "1", "next": came_from})
    assert response["Location"] == came_from
    assert not Alias.objects.filter(alias="sample").exists()


def test_row_actions_cost_no_query_per_row(client_for, editor, alias_factory, django_assert_max_num_queries):
    client = client_for(editor)
    alias_factory.create_batch(3)
    with django_assert_max_num_queries(30) as few:
        client.get(LIST_URL)
    alias_factory.create_batch(20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(LIST_URL)


# --- column picker -------------------------------------------------------------------------------------------------


def test_source_and_snapshot_start_hidden(client_for, viewer, sample):
    shown = headers(client_for(viewer).get(LIST_URL).content.decode())
    assert "Source" not in shown and "Snapshot" not in shown
    assert {"Alias", "File", "Repo", "Filename", "Chat template", "Updated"} <= set(shown)


def test_hidden_columns_are_not_rendered_and_the_choice_is_kept_per_user(client_for, viewer, make_user, sample):
    client = client_for(viewer)
    keep = ["file_status", "repo", "snapshot", "updated_at"]
    response = client.post(COLUMNS_URL, {"columns": keep, "next": f"{LIST_URL}?q=sam"})
    assert response.status_code == 302 and response["Location"] == f"{LIST_URL}?q=sam"
    content = client.get(f"{LIST_URL}?q=sam").content.decode()
    assert headers(content) == ["Alias", "File", "Repo", "Snapshot", "Updated"]
    assert "sample.Q4_K_M" not in content  # the filename cell is not rendered at all, not hidden by CSS
    assert TablePreference.objects.get(user=viewer, table="aliases").hidden_columns == [
        "source",
        "filename",
        "chat_template",
        "n_ctx",
        "temperature",
    ]
    # Another session of the same user (another browser) sees the same; another user keeps the defaults.
    assert headers(client_for(viewer).get(LIST_URL).content.decode()) == [
        "Alias",
        "File",
        "Repo",
        "Snapshot",
        "Updated",
    ]
    assert "Filename" in headers(client_for(make_user("viewer", "other")).get(LIST_URL).content.decode())


def test_the_picker_shows_the_current_choice_and_can_go_back_to_defaults(client_for, viewer, sample):
    client = client_for(viewer)
    client.post(COLUMNS_URL, {"columns": ["source", "repo"]})
    content = client.get(LIST_URL).content.decode()
    assert re.search(r'value="source" checked', content)
    assert not re.search(r'value="filename" checked', content)
    assert "(7 hidden)" in content
    client.post(COLUMNS_URL, {"reset": "1", "columns": ["repo"]})
    assert not TablePreference.objects.filter(user=viewer).exists()
    shown = headers(client.get(LIST_URL).content.decode())
    assert "Filename" in shown and "Source" not in shown


def test_the_column_a_list_is_sorted_by_is_shown_even_when_hidden(client_for, viewer, sample):
    shown = headers(client_for(viewer).get(LIST_URL, {"sort": "-source"}).content.decode())
    assert "Source" in shown


def test_unknown_columns_are_ignored_and_the_alias_column_always_stays(client_for, viewer, sample):
    client = client_for(viewer)
    client.post(COLUMNS_URL, {"columns": ["repo", "password", "alias"]})
    assert headers(client.get(LIST_URL).content.decode()) == ["Alias", "Repo"]


def test_htmx_submit_swaps_the_table_of_the_same_list_page(client_for, viewer, sample):
    client = client_for(viewer)
    response = client.post(
        COLUMNS_URL, {"columns": ["repo"], "next": f"{LIST_URL}?q=sam"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert json.loads(response["HX-Location"]) == {
        "path": f"{LIST_URL}?q=sam",
        "target": "#alias-table",
        "swap": "outerHTML",
    }
    fragment = client.get(f"{LIST_URL}?q=sam", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and headers(fragment) == ["Alias", "Repo"]


def test_the_picker_refuses_a_foreign_next_and_a_get(client_for, viewer):
    client = client_for(viewer)
    assert client.post(COLUMNS_URL, {"columns": ["repo"], "next": "https://evil.example/"})["Location"] == LIST_URL
    assert client.get(COLUMNS_URL).status_code == 405


def test_hiding_columns_makes_the_page_smaller(client_for, viewer, alias_factory):
    alias_factory.create_batch(30)
    client = client_for(viewer)
    full = len(client.get(LIST_URL).content)
    client.post(COLUMNS_URL, {"columns": ["repo"]})
    assert len(client.get(LIST_URL).content) < full * 0.8


# --- names wrap at separators --------------------------------------------------------------------------------------


def test_names_carry_break_opportunities_after_separators_only(client_for, viewer, alias_factory):
    alias_factory(alias="team-llama3:instruct_v2.1", repo="acme/Long-Name_GGUF", filename="dir/model.Q4_K_M.gguf")
    content = client_for(viewer).get(LIST_URL).content.decode()
    assert ">team-<wbr>llama3:<wbr>instruct_<wbr>v2.<wbr>1</a>" in content
    assert "acme/<wbr>Long-<wbr>Name_<wbr>GGUF" in content
    assert "dir/<wbr>model.<wbr>Q4_<wbr>K_<wbr>M.<wbr>gguf" in content
    row = re.search(r'<tr data-alias="team-llama3:instruct_v2.1".*?</tr>', content, re.S).group(0)
    assert "text-break" not in row  # Bootstrap's text-break breaks anywhere, mid-word included


def test_wrapped_names_are_still_escaped(client_for, viewer, alias_factory):
    alias_factory(alias="x", repo="acme/Name-GGUF", filename="<b>x</b>.gguf")
    content = client_for(viewer).get(LIST_URL).content.decode()
    assert "&lt;b&gt;x&lt;/<wbr>b&gt;.<wbr>gguf" in content and "<b>x</b>" not in content


# --- "Saved" only when something changed ---------------------------------------------------------------------------


def test_saving_an_unchanged_form_says_so_and_writes_nothing(client_for, editor, sample):
    client = client_for(editor)
    updated_at = sample.updated_at
    changes, audits = AliasChange.objects.count(), AuditEntry.objects.count()
    came_from = f"{LIST_URL}?q=sam"
    response = client.post(reverse("aliases:edit", args=["sample"]), edit_data(sample, next=came_from))
    assert response.status_code == 302 and response["Location"] == came_from
    page = client.get(came_from).content.decode()
    assert "No changes to save" in page and "Saved alias" not in page
    sample.refresh_from_db()
    assert sample.version == 1 and sample.updated_at == updated_at
    assert (AliasChange.objects.count(), AuditEntry.objects.count()) == (changes, audits)


def test_saving_a_change_still_says_saved(client_for, editor, sample):
    client = client_for(editor)
    client.post(reverse("aliases:edit", args=["sample"]), edit_data(sample, temperature="0.4"))
    page = client.get(LIST_URL).content.decode()
    assert "Saved alias sample." in page and "No changes to save" not in page


def test_api_put_of_identical_values_answers_the_alias_without_a_new_version(client_for, editor, sample):
    client = client_for(editor)
    url = reverse("aliases_api:model-detail", kwargs={"alias": "sample"})
    body = client.get(url).json()
    changes, audits = AliasChange.objects.count(), AuditEntry.objects.count()
    sent = {key: body[key] for key in ("alias", "repo", "filename", "snapshot", "chat_template", "request_params",
                                       "context_params")}  # fmt: skip
    response = client.put(url, {**sent, "version": body["version"]}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["version"] == 1 and response.json()["updated_at"] == body["updated_at"]
    assert (AliasChange.objects.count(), AuditEntry.objects.count()) == (changes, audits)
    # With ?merge=true too.
    response = client.put(f"{url}?merge=true", {**sent, "version": 1}, content_type="application/json")
    assert response.status_code == 200 and response.json()["version"] == 1
    assert AliasChange.objects.count() == changes
