from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from modelfiles import hub
from modelfiles.models import Download, ModelFile
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file, make_download, make_modelfile

pytestmark = pytest.mark.django_db

FILES_URL = reverse("modelfiles:list")
RESCAN_URL = reverse("modelfiles:rescan")
PULL_URL = reverse("modelfiles:pull")
PULL_FILES_URL = reverse("modelfiles:pull-files")
DOWNLOADS_URL = reverse("modelfiles:downloads")
ACTIVE_URL = reverse("modelfiles:downloads-active")
HTMX = {"HTTP_HX_REQUEST": "true"}
ROLES = ["viewer", "operator", "editor", "admin_user"]
PULLERS = ("operator", "admin_user")


@pytest.fixture
def hub_files(monkeypatch):
    """The Hub's answer to "which GGUF files are in this repo" (the real client is tested against a test Hub)."""
    calls = []
    answer: dict = {"files": [], "error": None}

    def list_gguf_files(repo: str, revision: str = "main", *, timeout: float | None = None):
        calls.append((repo, revision))
        if answer["error"] is not None:
            raise answer["error"]
        return answer["files"]

    monkeypatch.setattr(hub, "list_gguf_files", list_gguf_files)
    answer["calls"] = calls
    return answer


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def row_keys(response, attribute: str) -> list[str]:
    return re.findall(rf'<tr [^>]*{attribute}="([^"]+)"', response.content.decode())


def action_urls(download: Download) -> dict[str, str]:
    return {
        "cancel": reverse("modelfiles:download-cancel", args=[download.pk]),
        "retry": reverse("modelfiles:download-retry", args=[download.pk]),
        "pause": reverse("modelfiles:download-pause", args=[download.pk]),
        "resume": reverse("modelfiles:download-resume", args=[download.pk]),
    }


# --- who may see what -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url", [FILES_URL, DOWNLOADS_URL])
def test_every_role_reads_the_lists(request, client_for, role, url):
    make_modelfile()
    make_download()
    response = client_for(request.getfixturevalue(role)).get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_only_operators_and_admins_open_the_pull_form(request, client_for, role, hub_files):
    client = client_for(request.getfixturevalue(role))
    expected = 200 if role in PULLERS else 403
    assert client.get(PULL_URL).status_code == expected
    assert client.get(PULL_FILES_URL, {"repo": "acme/Tiny-GGUF"}).status_code == expected
    if expected == 403:
        assert "You can&#x27;t do that" in client.get(PULL_URL).content.decode()
        assert hub_files["calls"] == []


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_readers_cannot_write_with_post(request, client_for, role, hf_home):
    cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q4_K_M.gguf")
    active = make_download()
    failed = make_download(status=Download.Status.FAILED, error_code="network_error", error_message="Boom.")
    client = client_for(request.getfixturevalue(role))
    data = {"repo": "acme/Other-GGUF", "filename": "other.Q4_K_M.gguf", "revision": "main"}
    assert client.post(PULL_URL, data).status_code == 403
    assert client.post(action_urls(active)["cancel"]).status_code == 403
    assert client.post(action_urls(failed)["retry"]).status_code == 403
    assert client.post(RESCAN_URL).status_code == 403
    assert not Download.objects.filter(repo="acme/Other-GGUF").exists()
    active.refresh_from_db()
    failed.refresh_from_db()
    assert active.status == Download.Status.QUEUED
    assert failed.status == Download.Status.FAILED
    assert not ModelFile.objects.exists()


def test_anonymous_visitors_are_sent_to_login(client):
    download = make_download()
    for url in (FILES_URL, DOWNLOADS_URL, PULL_URL, PULL_FILES_URL, ACTIVE_URL):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(f"{reverse('login')}?next=")
    for url in (RESCAN_URL, PULL_URL, *action_urls(download).values()):
        response = client.post(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    download.refresh_from_db()
    assert download.status == Download.Status.QUEUED


def test_post_only_urls_answer_405_to_get(operator_client):
    download = make_download(status=Download.Status.FAILED)
    # Cancel's GET is its confirmation page (tests/modelfiles/test_pause.py); the other buttons are POST only.
    urls = action_urls(download)
    for url in (RESCAN_URL, urls["retry"], urls["pause"], urls["resume"]):
        assert operator_client.get(url).status_code == 405
    download.refresh_from_db()
    assert download.status == Download.Status.FAILED


def test_lists_answer_405_to_post(operator_client):
    for url in (FILES_URL, DOWNLOADS_URL, ACTIVE_URL, PULL_FILES_URL):
        assert operator_client.post(url).status_code == 405


def test_nav_links_follow_the_role(client_for, viewer, operator):
    viewer_page = client_for(viewer).get(FILES_URL).content.decode()
    operator_page = client_for(operator).get(FILES_URL).content.decode()
    for page in (viewer_page, operator_page):
        assert f'href="{FILES_URL}">Model files</a>' in page
        assert f'href="{DOWNLOADS_URL}">Downloads</a>' in page
    assert f'href="{PULL_URL}">Pull</a>' in operator_page
    assert f'href="{PULL_URL}"' not in viewer_page


# --- model files page -----------------------------------------------------------------------------------------------


def test_file_list_shows_present_files_readably(viewer_client):
    shown = make_modelfile(filename="llama.Q4_K_M.gguf", size=4_368_439_296, refs=["main", "v1"])
    make_modelfile(filename="gone.Q4_K_M.gguf", present=False)
    response = viewer_client.get(FILES_URL)
    page = response.content.decode()
    assert row_keys(response, "data-modelfile") == [f"acme/Tiny-GGUF/llama.Q4_K_M.gguf@{COMMIT}"]
    assert "gone.Q4_K_M.gguf" not in page
    assert "4.1 GB" in page  # human-readable size, exact bytes on hover
    assert 'title="4,368,439,296 bytes"' in page
    assert f'<code title="{COMMIT}">{COMMIT[:8]}</code>' in page  # short snapshot, full on hover
    assert ">v1</span>" in page
    assert re.search(r">3\shours ago</time>", page)  # relative time...
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', page)  # ...exact on hover
    assert shown.repo in page


def test_aliases_using_a_file_are_listed_by_commit_or_ref(viewer_client, alias_factory):
    file = make_modelfile(filename="llama.Q4_K_M.gguf", refs=["main"])
    other = make_modelfile(filename="other.Q4_K_M.gguf", refs=[])
    alias_factory(alias="by-ref", repo=file.repo, filename=file.filename, snapshot="main")
    alias_factory(alias="by-commit", repo=file.repo, filename=file.filename, snapshot=COMMIT)
    alias_factory(alias="other-commit", repo=file.repo, filename=file.filename, snapshot=OTHER_COMMIT)
    alias_factory(alias="other-file-by-ref", repo=other.repo, filename=other.filename, snapshot="main")
    alias_factory(alias="other-repo", repo="acme/Else-GGUF", filename=file.filename, snapshot=COMMIT)
    page = viewer_client.get(FILES_URL).content.decode()
    rows = dict(re.findall(r'<tr [^>]*data-modelfile="([^"]+)"[^>]*>(.*?)</tr>', page, flags=re.S))
    llama = rows[f"acme/Tiny-GGUF/llama.Q4_K_M.gguf@{COMMIT}"]
    assert f'<a href="{reverse("aliases:detail", args=["by-commit"])}">by-commit</a>' in llama
    assert ">by-ref</a>" in llama
    assert "other-commit" not in llama and "other-repo" not in llama and "other-file-by-ref" not in llama
    # `main` does not point at the other file's snapshot, so the alias asking for main does not load it.
    assert "other-file-by-ref" not in rows[f"acme/Tiny-GGUF/other.Q4_K_M.gguf@{COMMIT}"]


@pytest.mark.parametrize("role", ROLES)
def test_create_alias_link_only_for_alias_writers(request, client_for, role):
    file = make_modelfile(filename="llama.Q4_K_M.gguf")
    page = client_for(request.getfixturevalue(role)).get(FILES_URL).content.decode()
    query = urlencode({"repo": file.repo, "filename": file.filename, "snapshot": file.snapshot})
    link = f'href="{reverse("aliases:create")}?{query}"'.replace("&", "&amp;")
    if role in ("editor", "admin_user"):
        assert link in page
        assert "Create alias from this file" in page
    else:
        assert "Create alias from this file" not in page


def test_file_list_search_sort_and_page_size(viewer_client):
    for index in range(12):
        make_modelfile(repo=f"acme/Repo{index % 2}-GGUF", filename=f"m{index:02d}.gguf", size=1000 + index)
    response = viewer_client.get(FILES_URL, {"q": "repo1", "sort": "-size", "per_page": 10})
    keys = row_keys(response, "data-modelfile")
    expected = ["m11.gguf", "m09.gguf", "m07.gguf", "m05.gguf", "m03.gguf", "m01.gguf"]
    assert [key.split("/")[2].split("@")[0] for key in keys] == expected
    response = viewer_client.get(FILES_URL, {"per_page": 10, "sort": "filename", "page": 2})
    assert [key.split("/")[2].split("@")[0] for key in row_keys(response, "data-modelfile")] == ["m10.gguf", "m11.gguf"]
    assert "Showing 11–12 of 12 files" in response.content.decode()
    # A page size that is not offered falls back to the default (30): all twelve on one page.
    assert len(row_keys(viewer_client.get(FILES_URL, {"per_page": 7}), "data-modelfile")) == 12


def test_file_list_search_without_match_says_so(viewer_client):
    make_modelfile()
    page = viewer_client.get(FILES_URL, {"q": "nothing-like-this"}).content.decode()
    assert "No model files match your search." in page


def test_htmx_gets_only_the_table(viewer_client):
    make_modelfile()
    fragment = viewer_client.get(FILES_URL, {"q": "tiny"}, **HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert 'id="modelfile-table"' in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]
    full = viewer_client.get(FILES_URL, {"q": "tiny"})
    assert "<html" in full.content.decode() and 'id="modelfile-table"' in full.content.decode()
    restore = viewer_client.get(FILES_URL, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()


def test_empty_file_list_invites_operators_to_pull(client_for, viewer, operator):
    operator_page = client_for(operator).get(FILES_URL).content.decode()
    assert "No model files yet" in operator_page
    assert f'<a href="{PULL_URL}">pull one</a>' in operator_page
    viewer_page = client_for(viewer).get(FILES_URL).content.decode()
    assert "No model files yet" in viewer_page
    assert PULL_URL not in viewer_page


def _page_queries(client, url: str, params: dict) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries)


def test_file_list_queries_do_not_grow_with_page_size(client_for, editor, alias_factory):
    client = client_for(editor)
    for index in range(40):
        file = make_modelfile(filename=f"m{index:02d}.gguf")
        alias_factory(alias=f"alias-{index:02d}", repo=file.repo, filename=file.filename, snapshot="main")
    client.get(FILES_URL)  # warm up the session and the permission cache
    small = _page_queries(client, FILES_URL, {"per_page": 10})
    large = _page_queries(client, FILES_URL, {"per_page": 100})
    assert small == large
    with CaptureQueriesContext(connection) as queries:
        client.get(FILES_URL, {"per_page": 100})
    assert len([query for query in queries.captured_queries if '"aliases_alias"' in query["sql"]]) == 1
    page = client.get(FILES_URL, {"per_page": 100}).content.decode()
    assert page.count(">alias-") == 40


def test_rescan_reads_the_cache_and_says_what_changed(operator_client, hf_home):
    make_modelfile(repo="acme/Gone-GGUF", filename="gone.gguf")
    cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q4_K_M.gguf")
    cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q8_0.gguf", content=b"GGUF\x00other")
    response = operator_client.post(RESCAN_URL, {"next": f"{FILES_URL}?q=tiny"})
    assert response.status_code == 302
    assert response["Location"] == f"{FILES_URL}?q=tiny"
    assert messages_of(response) == ["Rescanned the cache: 2 new, 1 gone, 2 files."]
    present = set(ModelFile.objects.filter(present=True).values_list("filename", flat=True))
    assert present == {"tiny.Q4_K_M.gguf", "tiny.Q8_0.gguf"}
    assert ModelFile.objects.get(filename="tiny.Q4_K_M.gguf").refs == ["main"]
    assert not ModelFile.objects.get(filename="gone.gguf").present


def test_rescan_ignores_a_next_pointing_elsewhere(operator_client):
    response = operator_client.post(RESCAN_URL, {"next": "https://evil.example/"})
    assert response["Location"] == FILES_URL
    assert messages_of(response) == ["Rescanned the cache: 0 new, 0 gone, 0 files."]


def test_rescan_button_only_for_those_who_may(client_for, viewer, operator):
    assert f'action="{RESCAN_URL}"' in client_for(operator).get(FILES_URL).content.decode()
    assert f'action="{RESCAN_URL}"' not in client_for(viewer).get(FILES_URL).content.decode()


# --- pull form ------------------------------------------------------------------------------------------------------

PULL_DATA = {"repo": "acme/Tiny-GGUF", "filename": "tiny.Q4_K_M.gguf", "revision": "main"}


def test_pull_form_is_prefilled_from_the_query_string(operator_client):
    page = operator_client.get(PULL_URL, {**PULL_DATA, "revision": "v2"}).content.decode()
    assert 'name="repo" value="acme/Tiny-GGUF"' in page
    assert 'name="filename" value="tiny.Q4_K_M.gguf"' in page
    assert 'name="revision" value="v2"' in page
    assert 'name="revision" value="main"' in operator_client.get(PULL_URL).content.decode()


@pytest.mark.django_db(transaction=True)  # the task is handed to the broker on commit
def test_pull_queues_a_download_and_shows_its_status(operator_client, operator, monkeypatch):
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    response = operator_client.post(PULL_URL, PULL_DATA)
    assert response.status_code == 302
    assert response["Location"] == DOWNLOADS_URL
    download = Download.objects.get()
    assert (download.repo, download.filename, download.revision) == ("acme/Tiny-GGUF", "tiny.Q4_K_M.gguf", "main")
    assert download.status == Download.Status.QUEUED
    assert download.requested_by == operator
    # Nothing answers at HF_ENDPOINT here (tests/conftest.py): queued, saying the Hub was not asked.
    [message] = messages_of(response)
    assert message.startswith("Queued acme/Tiny-GGUF/tiny.Q4_K_M.gguf@main. Could not check with the Hub")
    assert sent == [str(download.pk)]


def test_pulling_an_active_download_again_shows_the_one_running(operator_client):
    running = make_download(**PULL_DATA, status=Download.Status.DOWNLOADING)
    response = operator_client.post(PULL_URL, PULL_DATA)
    assert response["Location"] == DOWNLOADS_URL
    assert Download.objects.get() == running
    assert messages_of(response)[0].startswith("Already downloading acme/Tiny-GGUF/tiny.Q4_K_M.gguf@main")


def test_empty_revision_means_main(operator_client):
    operator_client.post(PULL_URL, {**PULL_DATA, "revision": ""})
    assert Download.objects.get().revision == "main"


def test_pull_form_shows_errors_inline(operator_client):
    response = operator_client.post(PULL_URL, {"repo": "not a repo", "filename": "model.bin", "revision": "main"})
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"repo", "filename"}
    page = response.content.decode()
    for message in (*form.errors["repo"], *form.errors["filename"]):
        assert str(message).replace("'", "&#x27;") in page
    assert 'value="not a repo"' in page  # what was typed stays
    assert not Download.objects.exists()


def test_pull_form_requires_repo_and_file(operator_client):
    response = operator_client.post(PULL_URL, {"repo": "", "filename": "", "revision": ""})
    assert set(response.context["form"].errors) == {"repo", "filename"}
    assert not Download.objects.exists()


def test_pulling_a_file_already_in_the_cache_says_so(operator_client, hf_home):
    cache_file(hf_home, PULL_DATA["repo"], PULL_DATA["filename"])
    response = operator_client.post(PULL_URL, PULL_DATA)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="already-local"' in page
    assert "is already in the local cache" in page
    assert f'href="{FILES_URL}?q=tiny.Q4_K_M.gguf"' in page
    assert not Download.objects.exists()
    # Another revision of the same file is not local: that one is queued.
    assert operator_client.post(PULL_URL, {**PULL_DATA, "revision": "v2"})["Location"] == DOWNLOADS_URL


def test_list_gguf_files_fragment_for_htmx(operator_client, hub_files):
    hub_files["files"] = [
        hub.RepoFileInfo(path="tiny.Q4_K_M.gguf", size=734_003_200, sha256="a" * 64),
        hub.RepoFileInfo(path="sub/tiny.Q8_0.gguf", size=1_300_000_000, sha256="b" * 64),
    ]
    response = operator_client.get(PULL_FILES_URL, {"repo": "acme/Tiny-GGUF", "revision": "v2"}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert hub_files["calls"] == [("acme/Tiny-GGUF", "v2")]
    assert row_keys(response, "data-repo-file") == ["tiny.Q4_K_M.gguf", "sub/tiny.Q8_0.gguf"]
    assert "700.0 MB" in page and "1.2 GB" in page
    assert 'data-pick-filename="sub/tiny.Q8_0.gguf"' in page
    pick = f"{PULL_URL}?{urlencode({'repo': 'acme/Tiny-GGUF', 'filename': 'sub/tiny.Q8_0.gguf', 'revision': 'v2'})}"
    assert f'href="{pick}"'.replace("&", "&amp;") in page
    assert "<script" not in page


def test_list_gguf_files_without_javascript_is_the_pull_page(operator_client, hub_files):
    hub_files["files"] = [hub.RepoFileInfo(path="tiny.Q4_K_M.gguf", size=1024, sha256=None)]
    # The button posts the form; the answer sends the browser to the list with a GET (no CSRF token in a URL).
    response = operator_client.post(
        PULL_URL, {"repo": "acme/Tiny-GGUF", "filename": "", "revision": "", "action": "list"}
    )
    assert response.status_code == 303
    assert response["Location"] == f"{PULL_FILES_URL}?repo=acme%2FTiny-GGUF"
    assert not Download.objects.exists()
    page = operator_client.get(response["Location"]).content.decode()
    assert "<html" in page and 'id="pull-form"' in page
    assert 'name="repo" value="acme/Tiny-GGUF"' in page
    assert "1.0 KB" in page
    pick = f"{PULL_URL}?{urlencode({'repo': 'acme/Tiny-GGUF', 'filename': 'tiny.Q4_K_M.gguf', 'revision': 'main'})}"
    assert f'href="{pick}"'.replace("&", "&amp;") in page
    # ...and the Pick link opens the form filled in.
    form_page = operator_client.get(pick).content.decode()
    assert 'name="filename" value="tiny.Q4_K_M.gguf"' in form_page


def test_hub_errors_are_shown_in_the_file_list(operator_client, hub_files):
    hub_files["error"] = hub.HubError(
        "gated_repo", "acme/Gated-GGUF is gated: accept its licence on the Hub, then set HF_TOKEN.", transient=False
    )
    response = operator_client.get(PULL_FILES_URL, {"repo": "acme/Gated-GGUF"}, **HTMX)
    assert response.status_code == 200
    assert "is gated: accept its licence on the Hub, then set HF_TOKEN." in response.content.decode()


def test_file_list_checks_the_repo_before_asking_the_hub(operator_client, hub_files):
    for query in ({"repo": ""}, {"repo": "no/such/repo"}, {"repo": "acme/Tiny-GGUF", "revision": "bad revision"}):
        response = operator_client.get(PULL_FILES_URL, query, **HTMX)
        assert response.status_code == 200
        assert 'data-testid="repo-files-problem"' in response.content.decode()
    assert hub_files["calls"] == []


# --- download status page -------------------------------------------------------------------------------------------


def test_active_downloads_show_progress(operator_client, operator):
    running = make_download(
        status=Download.Status.DOWNLOADING,
        bytes_total=2 * 1024**3,
        bytes_done=512 * 1024**2,
        speed=25 * 1024**2,
        eta=3 * 60 + 20,
        attempts=2,
        requested_by=operator,
    )
    make_download(status=Download.Status.COMPLETED, filename="done.gguf")
    page = operator_client.get(DOWNLOADS_URL).content.decode()
    section = page[page.index('id="active-downloads"') : page.index("</section>")]
    assert f'data-download="{running.pk}"' in section
    assert "done.gguf" not in section
    assert 'aria-valuenow="25.0"' in section
    assert "pct-25" in section  # the bar's width: a class, as the Content-Security-Policy refuses style=""
    assert "25.0 %" in section
    assert "512.0 MB of 2.0 GB" in section
    assert "25.0 MB/s" in section
    assert "ETA 3 min 20 s" in section
    assert "attempt 2" in section
    assert reverse("modelfiles:download-cancel", args=[running.pk]) in section


def test_active_section_polls_only_while_something_is_active(viewer_client):
    make_download(status=Download.Status.FAILED)
    idle = viewer_client.get(DOWNLOADS_URL).content.decode()
    assert "Nothing is downloading right now." in idle
    assert 'hx-trigger="every 1s"' not in idle
    make_download(status=Download.Status.QUEUED)
    busy = viewer_client.get(DOWNLOADS_URL).content.decode()
    assert 'hx-trigger="every 1s"' in busy
    assert f'hx-get="{ACTIVE_URL}?state=' in busy


def test_active_fragment_stops_polling_when_downloads_end(viewer_client):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=100, bytes_done=10)
    first = viewer_client.get(ACTIVE_URL, **HTMX)
    assert first.status_code == 200
    page = first.content.decode()
    assert "<html" not in page
    assert 'hx-trigger="every 1s"' in page and 'hx-swap="outerHTML"' in page
    state = re.search(r"state=([0-9a-f]+)", page)[1]
    # Nothing changed: the next poll does not disturb the history table.
    assert "HX-Trigger" not in viewer_client.get(ACTIVE_URL, {"state": state}, **HTMX)
    Download.objects.filter(pk=download.pk).update(status=Download.Status.COMPLETED)
    last = viewer_client.get(ACTIVE_URL, {"state": state}, **HTMX)
    assert 'hx-trigger="every 1s"' not in last.content.decode()
    assert "Nothing is downloading right now." in last.content.decode()
    assert last["HX-Trigger"] == "downloads-changed"


def test_a_new_state_of_an_active_download_refreshes_history(viewer_client):
    download = make_download(status=Download.Status.QUEUED)
    state = re.search(r"state=([0-9a-f]+)", viewer_client.get(ACTIVE_URL, **HTMX).content.decode())[1]
    Download.objects.filter(pk=download.pk).update(status=Download.Status.DOWNLOADING)
    response = viewer_client.get(ACTIVE_URL, {"state": state}, **HTMX)
    assert response["HX-Trigger"] == "downloads-changed"
    assert 'hx-trigger="every 1s"' in response.content.decode()


def test_history_listens_for_changes(viewer_client):
    page = viewer_client.get(DOWNLOADS_URL, {"status": "failed"}).content.decode()
    assert 'hx-trigger="downloads-changed from:body"' in page
    assert f'hx-get="{DOWNLOADS_URL}?status=failed"' in page


def test_active_fragment_without_htmx_is_the_status_page(viewer_client):
    response = viewer_client.get(ACTIVE_URL)
    assert response.status_code == 302
    assert response["Location"] == DOWNLOADS_URL


def test_active_fragment_cancel_returns_to_the_page_it_is_on(operator_client):
    make_download(status=Download.Status.DOWNLOADING)
    current = f"http://testserver{DOWNLOADS_URL}?status=failed"
    page = operator_client.get(ACTIVE_URL, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=current).content.decode()
    assert f'name="next" value="{DOWNLOADS_URL}?status=failed"' in page
    elsewhere = operator_client.get(ACTIVE_URL, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/x")
    assert f'name="next" value="{DOWNLOADS_URL}"' in elsewhere.content.decode()


def test_polling_is_cheap_whatever_the_number_of_active_downloads(viewer_client):
    make_download(status=Download.Status.DOWNLOADING)
    viewer_client.get(ACTIVE_URL, **HTMX)  # warm up
    # Each measured poll is the first after the rows changed, so it reads them (modelfiles/live.py).
    Download.objects.update(bytes_done=1)
    with CaptureQueriesContext(connection) as one:
        viewer_client.get(ACTIVE_URL, **HTMX)
    for _ in range(15):
        make_download(status=Download.Status.DOWNLOADING)
    with CaptureQueriesContext(connection) as many:
        response = viewer_client.get(ACTIVE_URL, **HTMX)
    assert len(re.findall(r"data-download=", response.content.decode())) == 16
    assert len(one) == len(many)
    # Besides finding the session (the user and their permissions are kept in the cache): one query, for the rows.
    auth_tables = ('FROM "django_session"', 'FROM "auth_user"', 'FROM "auth_permission"', 'FROM "auth_group"')
    other = [query["sql"] for query in many.captured_queries if not any(t in query["sql"] for t in auth_tables)]
    assert len(other) == 1 and '"modelfiles_download"' in other[0]


def test_poll_shows_cancel_buttons_to_operators_only(client_for, viewer, operator):
    download = make_download(status=Download.Status.DOWNLOADING)
    cancel = action_urls(download)["cancel"]
    operator_poll = client_for(operator).get(ACTIVE_URL, **HTMX).content.decode()
    assert cancel in operator_poll and 'name="csrfmiddlewaretoken"' in operator_poll
    assert cancel not in client_for(viewer).get(ACTIVE_URL, **HTMX).content.decode()


def test_history_lists_every_finished_download_with_full_errors(client_for, operator, viewer):
    long_message = "The Hub refused access (403). " + "Set HF_TOKEN to a token that can read it and retry. " * 12
    failed = make_download(status=Download.Status.FAILED, error_code="unauthorized", error_message=long_message)
    cancelled = make_download(status=Download.Status.CANCELLED, error_code="cancelled", error_message="Cancelled.")
    make_download(status=Download.Status.DOWNLOADING)  # listed above History, not in it
    done = make_download(status=Download.Status.COMPLETED, bytes_total=2048, bytes_done=2048, requested_by=operator)
    response = client_for(operator).get(DOWNLOADS_URL)
    page = response.content.decode()
    assert set(row_keys(response, "data-download")) == {str(d.pk) for d in (failed, cancelled, done)}
    assert long_message.strip() in page
    assert "2.0\u00a0KB" in page and operator.username in page  # never broken between number and unit
    assert '<span class="badge text-wrap text-bg-danger" data-state="failed">failed</span>' in page
    assert page.count('name="csrfmiddlewaretoken"') >= 4  # every button is a POST form
    for download in (failed, cancelled):
        assert action_urls(download)["retry"] in page
        assert action_urls(download)["cancel"] not in page
    assert action_urls(done)["retry"] not in page and action_urls(done)["cancel"] not in page
    viewer_page = client_for(viewer).get(DOWNLOADS_URL).content.decode()
    assert long_message.strip() in viewer_page
    assert "/retry/" not in viewer_page and "/cancel/" not in viewer_page


def test_an_active_download_is_on_the_page_once_with_one_set_of_buttons(operator_client):
    active = make_download(status=Download.Status.DOWNLOADING, bytes_total=4 * 1024 * 1024, bytes_done=1024 * 1024)
    page = operator_client.get(DOWNLOADS_URL).content.decode()
    assert page.count(f'data-download="{active.pk}"') == 1
    assert page.count(f'action="{action_urls(active)["cancel"]}"') == 1
    assert page.count(f'action="{action_urls(active)["pause"]}"') == 1
    history = page[page.index('id="download-history"') :]
    assert str(active.pk) not in history
    assert "No downloads yet." in history
    # History is for finished downloads: its state filter offers no active state.
    assert operator_client.get(DOWNLOADS_URL, {"status": "downloading"}).context["filter"].errors


def test_history_filters_by_state(viewer_client):
    failed = make_download(status=Download.Status.FAILED)
    make_download(status=Download.Status.COMPLETED)
    make_download(status=Download.Status.QUEUED)
    response = viewer_client.get(DOWNLOADS_URL, {"status": "failed"})
    assert row_keys(response, "data-download") == [str(failed.pk)]
    assert viewer_client.get(DOWNLOADS_URL, {"status": "stalled"}).context["filter"].errors
    page = viewer_client.get(DOWNLOADS_URL, {"status": "cancelled"}).content.decode()
    assert "No downloads match your filters." in page


def test_history_sorts_and_pages(viewer_client):
    for index in range(12):
        make_download(status=Download.Status.COMPLETED, filename=f"d{index:02d}.gguf", attempts=index)
    response = viewer_client.get(DOWNLOADS_URL, {"sort": "-attempts", "per_page": 10, "page": 2})
    # Names carry a line-break opportunity after each separator (config/wrapping.py).
    names = re.findall(r"<td[^>]*>(d\d\d\.<wbr>gguf)</td>", response.content.decode())
    names = [name.replace("<wbr>", "") for name in names]
    assert names == ["d01.gguf", "d00.gguf"]


def test_history_fragment_for_htmx(viewer_client):
    make_download(status=Download.Status.FAILED)
    make_download(status=Download.Status.QUEUED)
    fragment = viewer_client.get(DOWNLOADS_URL, {"status": "failed"}, **HTMX)
    page = fragment.content.decode()
    assert "<html" not in page
    assert page.lstrip().startswith('<div id="download-history"')
    assert 'id="active-downloads"' not in page  # the active section polls on its own
    assert len(row_keys(fragment, "data-download")) == 1
    assert "HX-Request" in fragment["Vary"]


def test_history_queries_do_not_grow_with_page_size(client_for, operator, viewer):
    client = client_for(operator)
    for index in range(40):
        status = Download.Status.FAILED if index % 2 else Download.Status.COMPLETED
        make_download(status=status, requested_by=viewer if index % 3 else operator)
    client.get(DOWNLOADS_URL)
    assert _page_queries(client, DOWNLOADS_URL, {"per_page": 10}) == _page_queries(
        client, DOWNLOADS_URL, {"per_page": 100}
    )


# --- cancel and retry -----------------------------------------------------------------------------------------------


def test_cancel_stops_an_active_download_and_returns_to_the_page(operator_client):
    download = make_download(status=Download.Status.DOWNLOADING, filename="big.gguf")
    back = f"{DOWNLOADS_URL}?status=downloading&sort=-created_at"
    response = operator_client.post(action_urls(download)["cancel"], {"next": back})
    assert response.status_code == 302
    assert response["Location"] == back
    download.refresh_from_db()
    assert download.status == Download.Status.CANCELLED
    assert download.finished_at is not None
    assert messages_of(response) == ["Cancelled acme/Tiny-GGUF/big.gguf@main."]


def test_cancel_of_a_finished_download_changes_nothing(operator_client):
    download = make_download(status=Download.Status.COMPLETED, filename="done.gguf")
    response = operator_client.post(action_urls(download)["cancel"])
    assert response["Location"] == DOWNLOADS_URL
    download.refresh_from_db()
    assert download.status == Download.Status.COMPLETED
    assert messages_of(response) == ["acme/Tiny-GGUF/done.gguf@main is completed, not active: nothing to cancel."]


def test_retry_queues_a_failed_download_again(operator_client):
    download = make_download(status=Download.Status.FAILED, error_code="network_error", error_message="Boom.")
    response = operator_client.post(action_urls(download)["retry"], {"next": f"{DOWNLOADS_URL}?page=2"})
    assert response["Location"] == f"{DOWNLOADS_URL}?page=2"
    download.refresh_from_db()
    assert download.status == Download.Status.QUEUED
    assert download.error_message == ""
    assert messages_of(response)[0].startswith("Queued acme/Tiny-GGUF/")


def test_retry_of_a_completed_download_changes_nothing(operator_client):
    download = make_download(status=Download.Status.COMPLETED)
    response = operator_client.post(action_urls(download)["retry"])
    download.refresh_from_db()
    assert download.status == Download.Status.COMPLETED
    assert "only failed or cancelled downloads can be retried" in messages_of(response)[0]


def test_retry_when_a_newer_download_is_active_points_at_it(operator_client):
    old = make_download(status=Download.Status.FAILED, filename="same.gguf")
    make_download(status=Download.Status.DOWNLOADING, filename="same.gguf")
    response = operator_client.post(action_urls(old)["retry"])
    old.refresh_from_db()
    assert old.status == Download.Status.FAILED
    assert "already being downloaded by a newer request" in messages_of(response)[0]


def test_actions_ignore_a_next_pointing_elsewhere(operator_client):
    download = make_download(status=Download.Status.DOWNLOADING)
    response = operator_client.post(action_urls(download)["cancel"], {"next": "//evil.example/downloads/"})
    assert response["Location"] == DOWNLOADS_URL


def test_actions_on_an_unknown_download_are_404(operator_client):
    url = reverse("modelfiles:download-cancel", args=["00000000-0000-0000-0000-000000000000"])
    assert operator_client.post(url).status_code == 404


def test_no_inline_scripts_in_fragments(operator_client, hub_files):
    make_download(status=Download.Status.DOWNLOADING)
    make_modelfile()
    for url, params in ((ACTIVE_URL, {}), (DOWNLOADS_URL, {}), (FILES_URL, {}), (PULL_FILES_URL, {"repo": "a/b"})):
        assert "<script" not in operator_client.get(url, params, **HTMX).content.decode()


# --- admin ----------------------------------------------------------------------------------------------------------


def test_admin_lists_files_and_downloads_read_only(admin_client):
    file = make_modelfile(filename="llama.Q4_K_M.gguf")
    download = make_download(status=Download.Status.FAILED, error_code="gated_repo", error_message="Gated.")
    files_page = admin_client.get(reverse("admin:modelfiles_modelfile_changelist"), {"q": "llama"})
    assert files_page.status_code == 200 and "llama.Q4_K_M.gguf" in files_page.content.decode()
    downloads_page = admin_client.get(reverse("admin:modelfiles_download_changelist"), {"status__exact": "failed"})
    assert downloads_page.status_code == 200 and download.filename in downloads_page.content.decode()
    assert admin_client.get(reverse("admin:modelfiles_download_add")).status_code == 403
    detail = admin_client.get(reverse("admin:modelfiles_modelfile_change", args=[file.pk]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert (
        admin_client.post(reverse("admin:modelfiles_download_delete", args=[download.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert Download.objects.filter(pk=download.pk).exists()
