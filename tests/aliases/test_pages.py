from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from aliases.models import Alias, AliasChange
from aliases.services import alias_create, alias_update

pytestmark = pytest.mark.django_db

LIST_URL = reverse("aliases:list")
CREATE_URL = reverse("aliases:create")


def row_names(response) -> list[str]:
    return re.findall(r'<tr data-alias="([^"]+)"', response.content.decode())


def form_data(**overrides) -> dict[str, str]:
    data = {
        "alias": "llama3:instruct",
        "repo": "meta-llama/Llama-3-8B-GGUF",
        "filename": "llama3.Q4_K_M.gguf",
        "snapshot": "main",
        "chat_template": "llama3",
        "temperature": "",
        "top_p": "",
        "max_tokens": "",
        "frequency_penalty": "",
        "presence_penalty": "",
        "seed": "",
        "stop": "",
        "user": "",
        "n_seed": "",
        "n_threads": "",
        "n_ctx": "",
        "n_parallel": "",
        "n_predict": "",
        "n_keep": "",
    }
    data.update(overrides)
    return data


def edit_data(instance: Alias, **overrides) -> dict[str, str]:
    """The edit form as the browser would post it for `instance`, unchanged except for `overrides`."""
    data = {name: "" if value is None else str(value) for name, value in instance.values().items()}
    data["stop"] = "\n".join(instance.stop)
    data["version"] = str(instance.version)
    data.update(overrides)
    return data


@pytest.fixture
def sample(editor):
    # Created through the service, so its first version is on record (conflict reports compare against it).
    return alias_create(
        data={"alias": "sample", "repo": "acme/Sample-GGUF", "filename": "sample.Q4_K_M.gguf"}, by=editor
    )


@pytest.fixture
def model_alias(alias_factory):
    return alias_factory(alias="acme/Tiny-GGUF:Q4_K_M", source=Alias.Source.MODEL, repo="acme/Tiny-GGUF")


def page_urls(name: str) -> dict[str, str]:
    return {
        "list": LIST_URL,
        "detail": reverse("aliases:detail", args=[name]),
        "create": CREATE_URL,
        "edit": reverse("aliases:edit", args=[name]),
        "delete": reverse("aliases:delete", args=[name]),
        "duplicate": reverse("aliases:duplicate", args=[name]),
    }


# --- who may see what -------------------------------------------------------------------------------------------

WRITE_PAGES = ("create", "edit", "delete", "duplicate")


@pytest.mark.parametrize("role", ["viewer", "operator", "editor", "admin_user"])
@pytest.mark.parametrize("page", ["list", "detail", "create", "edit", "delete", "duplicate"])
def test_each_page_answers_each_role(request, client_for, sample, role, page):
    user = request.getfixturevalue(role)
    response = client_for(user).get(page_urls(sample.alias)[page])
    writer = role in ("editor", "admin_user")
    expected = 403 if page in WRITE_PAGES and not writer else 200
    assert response.status_code == expected
    if expected == 403:
        assert "You can&#x27;t do that" in response.content.decode()


@pytest.mark.parametrize("page", ["list", "detail", "create", "edit", "delete", "duplicate"])
def test_anonymous_visitor_is_sent_to_login(client, sample, page):
    url = page_urls(sample.alias)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_readers_cannot_write_with_post(request, client_for, sample, role):
    client = client_for(request.getfixturevalue(role))
    urls = page_urls(sample.alias)
    assert client.post(urls["create"], form_data(alias="sneaky")).status_code == 403
    assert client.post(urls["edit"], edit_data(sample, temperature="1.5")).status_code == 403
    assert client.post(urls["delete"], {"version": sample.version}).status_code == 403
    assert not Alias.objects.filter(alias="sneaky").exists()
    sample.refresh_from_db()
    assert sample.temperature is None
    assert sample.version == 1


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_readers_see_no_write_buttons(request, client_for, sample, role):
    client = client_for(request.getfixturevalue(role))
    list_page = client.get(LIST_URL).content.decode()
    detail_page = client.get(reverse("aliases:detail", args=[sample.alias])).content.decode()
    for page in (list_page, detail_page):
        assert CREATE_URL not in page
        assert reverse("aliases:edit", args=[sample.alias]) not in page
        assert reverse("aliases:delete", args=[sample.alias]) not in page
        assert reverse("aliases:duplicate", args=[sample.alias]) not in page
    # The row links to the read-only page instead.
    assert f'href="{reverse("aliases:detail", args=[sample.alias])}"' in list_page


def test_editor_sees_write_buttons_and_edit_links(client_for, editor, sample):
    client = client_for(editor)
    list_page = client.get(LIST_URL).content.decode()
    assert CREATE_URL in list_page
    assert f'href="{reverse("aliases:edit", args=[sample.alias])}"' in list_page
    detail_page = client.get(reverse("aliases:detail", args=[sample.alias])).content.decode()
    for page in ("edit", "delete", "duplicate"):
        assert reverse(f"aliases:{page}", args=[sample.alias]) in detail_page


def test_wrong_methods_answer_405(client_for, editor, sample):
    client = client_for(editor)
    assert client.post(LIST_URL).status_code == 405
    assert client.post(reverse("aliases:detail", args=[sample.alias])).status_code == 405
    assert client.post(reverse("aliases:duplicate", args=[sample.alias])).status_code == 405
    assert client.put(reverse("aliases:delete", args=[sample.alias])).status_code == 405
    assert Alias.objects.filter(pk=sample.pk).exists()


def test_unknown_alias_is_404(client_for, editor):
    response = client_for(editor).get(reverse("aliases:edit", args=["nope"]))
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_names_are_looked_up_regardless_of_case(client_for, viewer, sample):
    response = client_for(viewer).get(reverse("aliases:detail", args=["SAMPLE"]))
    assert response.status_code == 200
    assert "acme/Sample-GGUF" in response.content.decode()


def test_pages_have_titles_and_mark_the_nav(client_for, editor, sample):
    client = client_for(editor)
    cases = {
        LIST_URL: "<title>Aliases · ModelDesk</title>",
        CREATE_URL: "<title>New alias · ModelDesk</title>",
        reverse("aliases:edit", args=["sample"]): "<title>Edit sample · ModelDesk</title>",
        reverse("aliases:detail", args=["sample"]): "<title>sample · ModelDesk</title>",
        reverse("aliases:delete", args=["sample"]): "<title>Delete sample · ModelDesk</title>",
        reverse("aliases:duplicate", args=["sample"]): "<title>Duplicate sample · ModelDesk</title>",
    }
    for url, title in cases.items():
        page = client.get(url).content.decode()
        assert title in page, url
        assert re.search(r'class="nav-link active"[^>]*\s+href="/aliases/">Aliases</a>', page), url


# --- the list: htmx, sorting, search, filters, paging -----------------------------------------------------------


def test_htmx_request_gets_only_the_table(client_for, viewer, sample):
    response = client_for(viewer).get(LIST_URL, {"q": "sam"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in content
    assert content.lstrip().startswith('<div id="alias-table"')
    assert row_names(response) == ["sample"]
    assert "HX-Request" in response["Vary"]


def test_htmx_history_restore_gets_the_full_page(client_for, viewer, sample):
    response = client_for(viewer).get(
        LIST_URL, {"q": "sam"}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    content = response.content.decode()
    assert "<html" in content
    assert 'id="alias-filter"' in content
    assert row_names(response) == ["sample"]


def test_plain_request_gets_the_full_page_with_htmx_wiring(client_for, viewer, sample):
    response = client_for(viewer).get(LIST_URL)
    content = response.content.decode()
    assert "<html" in content
    assert "HX-Request" in response["Vary"]
    assert 'hx-trigger="input changed delay:300ms, search"' in content
    assert 'hx-target="#alias-table"' in content
    assert 'hx-push-url="true"' in content
    # Without JavaScript the filter form still submits with a button.
    assert '<button type="submit" class="btn btn-outline-primary">Filter</button>' in content


def test_the_filters_listen_to_their_selects_with_a_selector_htmx_reads(client_for, viewer, sample):
    content = client_for(viewer).get(LIST_URL).content.decode()
    # htmx reads `from:` up to the first space unless the selector is in parentheses; "from:#f select" made it
    # listen on the whole form and log htmx:syntax:error for "select" on every list page.
    assert 'hx-trigger="submit, change from:(#alias-filter select)"' in content
    froms = re.findall(r'hx-trigger="[^"]*\bfrom:([^"]*)"', content)
    assert froms and all(not re.match(r"[^({][^,]*\s\S", value) for value in froms), froms


def _sortable_aliases(alias_factory):
    now = timezone.now()
    rows = [
        # alias, source, repo, filename, snapshot, chat_template, n_ctx, temperature, updated minutes ago
        ("bravo", "user", "c-org/Zeta-GGUF", "b.gguf", "c" * 40, "phi3", 4096, 0.2, 5),
        ("Alpha", "model", "a-org/Mid-GGUF", "c.gguf", "main", "embedded", 2048, 1.5, 1),
        ("charlie", "user", "b-org/Alpha-GGUF", "a.gguf", "a" * 40, "chatml", 8192, 0.9, 10),
    ]
    for name, source, repo, filename, snapshot, template, n_ctx, temperature, minutes in rows:
        alias = alias_factory(
            alias=name,
            source=source,
            repo=repo,
            filename=filename,
            snapshot=snapshot,
            chat_template=template,
            n_ctx=n_ctx,
            temperature=temperature,
        )
        Alias.objects.filter(pk=alias.pk).update(updated_at=now - timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("column", "ascending"),
    [
        ("alias", ["Alpha", "bravo", "charlie"]),
        ("source", ["Alpha", "bravo", "charlie"]),  # model < user; bravo and charlie tie, pk decides
        ("repo", ["Alpha", "charlie", "bravo"]),
        ("filename", ["charlie", "bravo", "Alpha"]),
        ("snapshot", ["charlie", "bravo", "Alpha"]),
        ("chat_template", ["charlie", "Alpha", "bravo"]),
        ("n_ctx", ["Alpha", "bravo", "charlie"]),
        ("temperature", ["bravo", "charlie", "Alpha"]),
        ("updated_at", ["charlie", "bravo", "Alpha"]),
    ],
)
def test_every_column_sorts_both_ways(client_for, viewer, alias_factory, column, ascending):
    _sortable_aliases(alias_factory)
    client = client_for(viewer)
    assert row_names(client.get(LIST_URL, {"sort": column})) == ascending
    descending = row_names(client.get(LIST_URL, {"sort": f"-{column}"}))
    if column == "source":
        assert descending == ["charlie", "bravo", "Alpha"]  # the pk tiebreak flips with the direction
    else:
        assert descending == list(reversed(ascending))


def test_sort_links_toggle_and_reset_the_page(client_for, viewer, alias_factory):
    _sortable_aliases(alias_factory)
    content = client_for(viewer).get(LIST_URL, {"sort": "repo", "page": "1"}).content.decode()
    assert 'href="/aliases/?sort=-repo"' in content
    assert 'hx-get="/aliases/?sort=-repo"' in content
    assert 'aria-sort="ascending"' in content


def test_equal_values_keep_a_stable_order_across_pages(client_for, viewer, alias_factory):
    for number in range(25):
        alias_factory(alias=f"same-{24 - number:02d}", repo="acme/Same-GGUF")
    client = client_for(viewer)
    seen = []
    for page in (1, 2, 3):
        seen += row_names(client.get(LIST_URL, {"sort": "repo", "per_page": "10", "page": page}))
    expected = [alias.alias for alias in Alias.objects.order_by("pk")]
    assert seen == expected


def test_search_matches_alias_repo_and_filename_ignoring_case(client_for, viewer, alias_factory):
    alias_factory(alias="qwen-chat", repo="acme/Qwen-GGUF", filename="q.gguf")
    alias_factory(alias="other", repo="TheBloke/Mistral-GGUF", filename="m.gguf")
    alias_factory(alias="third", repo="acme/Third-GGUF", filename="PHI-3-mini.Q8_0.gguf")
    client = client_for(viewer)
    assert row_names(client.get(LIST_URL, {"q": "QWEN"})) == ["qwen-chat"]
    assert row_names(client.get(LIST_URL, {"q": "thebloke"})) == ["other"]
    assert row_names(client.get(LIST_URL, {"q": "phi-3"})) == ["third"]
    assert row_names(client.get(LIST_URL, {"q": "acme"})) == ["qwen-chat", "third"]


def test_filters_by_source_and_repo(client_for, viewer, alias_factory):
    alias_factory(alias="mine", repo="acme/One-GGUF")
    alias_factory(alias="generated", repo="acme/One-GGUF", source=Alias.Source.MODEL)
    alias_factory(alias="elsewhere", repo="acme/Two-GGUF")
    client = client_for(viewer)
    assert row_names(client.get(LIST_URL, {"source": "model"})) == ["generated"]
    assert row_names(client.get(LIST_URL, {"repo": "acme/One-GGUF"})) == ["generated", "mine"]
    assert row_names(client.get(LIST_URL, {"repo": "acme/One-GGUF", "source": "user"})) == ["mine"]
    # Typed, not picked from one option per repo: part of a name narrows, ignoring case.
    assert row_names(client.get(LIST_URL, {"repo": "two-gguf"})) == ["elsewhere"]
    page = client.get(LIST_URL).content.decode()
    assert 'name="repo"' in page and '<option value="acme/Two-GGUF">' not in page


def test_filters_that_exclude_everything_say_no_matches(client_for, editor, sample):
    response = client_for(editor).get(LIST_URL, {"q": "nothing-like-this"})
    content = response.content.decode()
    assert "No aliases match your search or filters." in content
    assert "No aliases yet" not in content


def test_empty_list_invites_editors_to_create(client_for, editor, viewer):
    editor_page = client_for(editor).get(LIST_URL).content.decode()
    assert "No aliases yet." in editor_page
    assert "Create the first alias" in editor_page
    viewer_page = client_for(viewer).get(LIST_URL).content.decode()
    assert "No aliases yet." in viewer_page
    assert "Create the first alias" not in viewer_page


@pytest.mark.parametrize(("asked", "shown"), [(None, 30), ("10", 10), ("100", 100), ("7", 30), ("abc", 30)])
def test_page_size_choice(client_for, viewer, alias_factory, asked, shown):
    alias_factory.create_batch(105)
    params = {"per_page": asked} if asked else {}
    response = client_for(viewer).get(LIST_URL, params)
    assert len(row_names(response)) == shown
    assert f"Showing 1–{shown} of 105 aliases" in response.content.decode()


def test_page_size_links_keep_the_search_and_reset_the_page(client_for, viewer, alias_factory):
    alias_factory.create_batch(35)
    content = client_for(viewer).get(LIST_URL, {"q": "model", "page": "2"}).content.decode()
    assert 'href="/aliases/?q=model&amp;per_page=100"' in content
    # The chosen size follows later searches: it belongs to the filter form.
    content = client_for(viewer).get(LIST_URL, {"per_page": "10"}).content.decode()
    assert '<input type="hidden" name="per_page" value="10" form="alias-filter">' in content


def test_paging_shows_the_next_rows(client_for, viewer, alias_factory):
    alias_factory.create_batch(15)
    client = client_for(viewer)
    first = row_names(client.get(LIST_URL, {"per_page": "10"}))
    second = row_names(client.get(LIST_URL, {"per_page": "10", "page": "2"}))
    assert len(first) == 10
    assert len(second) == 5
    assert not set(first) & set(second)
    # A page past the end shows the last page rather than an error.
    assert row_names(client.get(LIST_URL, {"per_page": "10", "page": "99"})) == second


def test_query_count_does_not_grow_with_page_size(client_for, editor, alias_factory):
    alias_factory.create_batch(110, updated_by=editor)
    client = client_for(editor)
    client.get(LIST_URL)  # warm the session and content types

    def queries(per_page: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(LIST_URL, {"per_page": per_page, "sort": "-updated_at"})
        assert len(row_names(response)) == int(per_page)
        return len(captured)

    small, large = queries("10"), queries("100")
    assert small == large
    assert large <= 12


def test_updated_column_shows_relative_time_with_exact_title(client_for, viewer, sample):
    content = client_for(viewer).get(LIST_URL).content.decode()
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">now</time>', content)


def test_snapshot_column_is_short_with_full_hash_on_hover(client_for, viewer, alias_factory):
    alias_factory(alias="pinned", snapshot="0123456789abcdef0123456789abcdef01234567")
    client = client_for(viewer)
    client.post(reverse("aliases:columns"), {"columns": ["snapshot"]})  # hidden until asked for
    content = client.get(LIST_URL).content.decode()
    assert '<code title="0123456789abcdef0123456789abcdef01234567">01234567</code>' in content


# --- create ------------------------------------------------------------------------------------------------------


def test_form_shows_every_bound_from_the_validators(client_for, editor):
    content = client_for(editor).get(CREATE_URL).content.decode()
    assert re.search(r'name="temperature"[^>]*min="0"[^>]*max="2"[^>]*step="any"', content) or re.search(
        r'name="temperature"[^>]*step="any"[^>]*min="0"[^>]*max="2"', content
    )
    assert "Allowed: between 0 and 2. Sampling temperature" in content
    assert "Allowed: 0, or between 128 and 1,048,576. Context window" in content
    assert "Allowed: -2 or -1, or between 1 and 1,048,576." in content
    for legend in ("Basic information", "Model selection", "Parameters", "Request parameters", "Context parameters"):
        assert f"<legend>{legend}</legend>" in content
    assert '<datalist id="chat-template-options">' in content
    assert '<option value="chatml"></option>' in content


def test_invalid_create_shows_errors_inline_and_keeps_the_input(client_for, editor):
    stop = "one\ntwo\nthree\nfour\nfive"
    response = client_for(editor).post(
        CREATE_URL, form_data(alias="too-hot", temperature="2.5", stop=stop, user="someone")
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Must be between 0 and 2 (got 2.5)." in content
    assert "At most 4 stop words are allowed (got 5)." in content
    assert not Alias.objects.filter(alias="too-hot").exists()
    assert 'value="too-hot"' in content
    assert 'value="2.5"' in content
    assert "one\ntwo\nthree\nfour\nfive</textarea>" in content
    assert 'value="someone"' in content
    # The error sits with its field, not only at the top of the page.
    assert re.search(r'id="error_1_id_temperature"[^>]*>\s*<strong>Must be between 0 and 2', content)


def test_duplicate_stop_words_are_refused_with_the_models_message(client_for, editor):
    response = client_for(editor).post(CREATE_URL, form_data(stop="END\nEND"))
    assert response.status_code == 200
    assert "Stop words must be different from each other (repeated: &#x27;END&#x27;)." in response.content.decode()
    assert not Alias.objects.exists()


def test_cross_field_rule_is_reported_on_its_field(client_for, editor):
    response = client_for(editor).post(CREATE_URL, form_data(n_ctx="512", n_keep="1024"))
    content = response.content.decode()
    assert re.search(r'id="error_1_id_n_keep"[^>]*>\s*<strong>Must not exceed n_ctx \(512\)', content)
    assert not Alias.objects.exists()


def test_name_taken_in_another_case_is_refused_on_the_name(client_for, editor, sample):
    response = client_for(editor).post(CREATE_URL, form_data(alias="SAMPLE"))
    content = response.content.decode()
    assert re.search(r'id="error_1_id_alias"[^>]*>\s*<strong>An alias named sample already exists', content)
    assert Alias.objects.count() == 1


def test_valid_create_shows_the_new_alias_with_a_message(client_for, editor):
    client = client_for(editor)
    response = client.post(CREATE_URL, form_data(temperature="0.7", n_ctx="8192", stop="<|eot_id|>\n\\n\\nUser:"))
    assert response.status_code == 302
    assert response["Location"] == reverse("aliases:detail", args=["llama3:instruct"])
    alias = Alias.objects.get(alias="llama3:instruct")
    assert alias.temperature == 0.7
    assert alias.n_ctx == 8192
    assert alias.stop == ["<|eot_id|>", "\n\nUser:"]
    assert alias.created_by == editor
    assert AliasChange.objects.filter(alias=alias, action="create", changed_by=editor).exists()
    page = client.get(response["Location"]).content.decode()
    assert "Created alias llama3:instruct." in page and "<h1" in page and "llama3:instruct" in page


def test_create_shows_the_new_alias_and_keeps_the_way_back_to_the_list(client_for, editor):
    client = client_for(editor)
    came_from = f"{LIST_URL}?q=llama&sort=-repo"
    response = client.post(CREATE_URL, form_data(next=came_from))
    detail = reverse("aliases:detail", args=["llama3:instruct"])
    assert response["Location"] == f"{detail}?{urlencode({'next': came_from})}"
    page = client.get(response["Location"]).content.decode()
    assert f'href="{escape(came_from)}"' in page  # the page's way back is the list the editor came from
    response = client.post(CREATE_URL, form_data(alias="second", next="https://evil.example/"))
    assert response["Location"] == reverse("aliases:detail", args=["second"])


def test_stop_word_escapes_are_shown_back_the_same_way(client_for, editor, alias_factory):
    alias = alias_factory(alias="escapes", stop=["\n", "a\tb", "back\\slash"])
    content = client_for(editor).get(reverse("aliases:edit", args=[alias.alias])).content.decode()
    assert "\\n\n" in content
    assert "a\\tb\n" in content
    assert "back\\\\slash</textarea>" in content


# --- edit ---------------------------------------------------------------------------------------------------------


def test_edit_saves_and_bumps_the_version(client_for, editor, sample):
    client = client_for(editor)
    edit_url = reverse("aliases:edit", args=[sample.alias])
    came_from = f"{LIST_URL}?q=sam"
    response = client.post(edit_url, edit_data(sample, temperature="0.3", next=came_from))
    assert response.status_code == 302
    assert response["Location"] == came_from
    sample.refresh_from_db()
    assert sample.temperature == 0.3
    assert sample.version == 2
    assert sample.updated_by == editor
    assert "Saved alias sample." in client.get(came_from).content.decode()


def test_edit_form_carries_the_loaded_version(client_for, editor, sample):
    content = client_for(editor).get(reverse("aliases:edit", args=[sample.alias])).content.decode()
    assert '<input type="hidden" name="version" value="1"' in content


def test_stale_edit_is_refused_and_lists_what_changed(client_for, editor, make_user, sample):
    other = make_user("editor", "olga-other")
    alias_update(alias=sample, data={"temperature": 0.9, "n_ctx": 4096}, expected_version=1, by=other)
    response = client_for(editor).post(
        reverse("aliases:edit", args=[sample.alias]), edit_data(sample, temperature="0.1", version="1")
    )
    content = response.content.decode()
    assert response.status_code == 409
    assert "sample was changed by olga-other while you were editing" in content
    assert "choose, per field, whose value to keep" in content
    table = content[content.index('data-testid="version-conflict"') :]
    # Both changed temperature: a choice. Only they changed n_ctx: theirs is kept, no choice.
    assert re.search(r"<th scope=\"row\">temperature</th><td>—</td><td>0.9</td><td>0.1</td>\s*<td", table)
    assert 'name="resolve_temperature"' in table
    assert re.search(r"<th scope=\"row\">n_ctx</th><td>—</td><td>4096</td><td>—</td>\s*<td[^>]*>theirs</td>", table)
    assert 'name="resolve_n_ctx"' not in table
    # What the editor typed is kept, and so is the version it was opened at (the merge's base).
    assert 'value="0.1"' in content
    assert '<input type="hidden" name="version" value="1"' in content
    sample.refresh_from_db()
    assert sample.temperature == 0.9
    assert sample.version == 2


def test_choosing_mine_after_a_conflict_replaces_only_that_field(client_for, editor, make_user, sample):
    other = make_user("editor", "olga-other")
    alias_update(alias=sample, data={"temperature": 0.9, "n_ctx": 4096}, expected_version=1, by=other)
    client = client_for(editor)
    edit_url = reverse("aliases:edit", args=[sample.alias])
    first = client.post(edit_url, edit_data(sample, temperature="0.1", version="1"))
    assert first.status_code == 409
    second = client.post(edit_url, {**edit_data(sample, temperature="0.1", version="1"), "resolve_temperature": "mine"})
    assert second.status_code == 302
    sample.refresh_from_db()
    assert (sample.temperature, sample.n_ctx, sample.version) == (0.1, 4096, 3)


def test_edit_without_a_version_is_refused(client_for, editor, sample):
    data = edit_data(sample, temperature="1.0")
    del data["version"]
    response = client_for(editor).post(reverse("aliases:edit", args=[sample.alias]), data)
    assert response.status_code == 200
    assert "missing the version it was opened at" in response.content.decode()
    sample.refresh_from_db()
    assert sample.temperature is None


def test_invalid_edit_keeps_the_input_and_the_stored_row(client_for, editor, sample):
    response = client_for(editor).post(
        reverse("aliases:edit", args=[sample.alias]), edit_data(sample, alias="renamed", top_p="1.5")
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Must be between 0 and 1 (got 1.5)." in content
    assert 'value="renamed"' in content
    assert "<title>Edit sample · ModelDesk</title>" in content
    sample.refresh_from_db()
    assert sample.alias == "sample"
    assert sample.top_p is None


def test_model_alias_cannot_be_edited_or_deleted(client_for, editor, model_alias):
    client = client_for(editor)
    edit_url = reverse("aliases:edit", args=[model_alias.alias])
    for response in (
        client.get(edit_url),
        client.post(edit_url, edit_data(model_alias, temperature="0.5")),
        client.get(reverse("aliases:delete", args=[model_alias.alias])),
        client.post(reverse("aliases:delete", args=[model_alias.alias]), {"version": "1"}),
    ):
        content = response.content.decode()
        assert response.status_code == 403
        assert "is read-only" in content
        assert reverse("aliases:duplicate", args=[model_alias.alias]) in content
    model_alias.refresh_from_db()
    assert model_alias.temperature is None


# --- delete and duplicate -----------------------------------------------------------------------------------------


def test_delete_asks_first_then_deletes(client_for, editor, sample):
    client = client_for(editor)
    delete_url = reverse("aliases:delete", args=[sample.alias])
    confirm = client.get(delete_url)
    assert confirm.status_code == 200
    assert "Delete alias sample?" in confirm.content.decode()
    assert Alias.objects.filter(pk=sample.pk).exists()
    came_from = f"{LIST_URL}?per_page=10"
    response = client.post(delete_url, {"version": "1", "next": came_from})
    assert response.status_code == 302
    assert response["Location"] == came_from
    assert not Alias.objects.filter(pk=sample.pk).exists()
    assert AliasChange.objects.filter(alias_name="sample", action="delete", changed_by=editor).exists()
    assert "Deleted alias sample." in client.get(came_from).content.decode()


def test_delete_of_a_changed_alias_asks_again(client_for, editor, make_user, sample):
    alias_update(alias=sample, data={"temperature": 0.4}, expected_version=1, by=make_user("editor", "olga"))
    response = client_for(editor).post(reverse("aliases:delete", args=[sample.alias]), {"version": "1"})
    assert response.status_code == 409
    assert "Nothing was deleted" in response.content.decode()
    assert Alias.objects.filter(pk=sample.pk).exists()


def test_duplicate_prefills_the_create_form(client_for, editor, alias_factory):
    source = alias_factory(alias="base", temperature=0.4, n_ctx=2048, stop=["###"], chat_template="chatml")
    response = client_for(editor).get(reverse("aliases:duplicate", args=[source.alias]))
    content = response.content.decode()
    assert response.status_code == 200
    assert f'action="{CREATE_URL}"' in content
    assert 'name="alias" value="base-copy"' in content
    assert 'value="0.4"' in content
    assert 'value="2048"' in content
    assert "###</textarea>" in content
    assert 'value="chatml"' in content


def test_duplicate_leaves_the_name_empty_when_the_copy_name_is_taken(client_for, editor, alias_factory):
    alias_factory(alias="base")
    alias_factory(alias="base-copy")
    content = client_for(editor).get(reverse("aliases:duplicate", args=["base"])).content.decode()
    assert re.search(r'<input type="text" name="alias"(?![^>]*value=)[^>]*>', content)


def test_model_alias_can_be_duplicated_into_a_user_alias(client_for, editor, model_alias):
    client = client_for(editor)
    page = client.get(reverse("aliases:duplicate", args=[model_alias.alias])).content.decode()
    assert 'value="Tiny-GGUF:Q4_K_M"' in page
    response = client.post(
        CREATE_URL,
        form_data(alias="tiny-mine", repo=model_alias.repo, filename=model_alias.filename, chat_template="embedded"),
    )
    assert response.status_code == 302
    assert Alias.objects.get(alias="tiny-mine").source == Alias.Source.USER


# --- detail -------------------------------------------------------------------------------------------------------


def test_detail_shows_fields_and_recent_changes(client_for, viewer, editor):
    alias = alias_create(data={"alias": "hist", "repo": "acme/H-GGUF", "filename": "h.gguf"}, by=editor)
    alias_update(alias=alias, data={"temperature": 1.2, "stop": ["\n"]}, expected_version=1, by=editor)
    content = client_for(viewer).get(reverse("aliases:detail", args=["hist"])).content.decode()
    for heading in ("Basic information", "Model selection", "Request parameters", "Context parameters"):
        assert heading in content
    history = content[content.index('data-testid="alias-history"') :]
    assert "edith-editor" in history
    assert "temperature</span>: — → 1.2" in history
    assert "stop</span>: — → \\n" in history
    assert "Create" in history


def test_detail_shows_each_stop_word_escaped(client_for, viewer, alias_factory):
    alias_factory(alias="stops", stop=["\n", "a, b"])
    content = client_for(viewer).get(reverse("aliases:detail", args=["stops"])).content.decode()
    assert '<code class="me-2">\\n</code><code class="me-2">a, b</code>' in content
