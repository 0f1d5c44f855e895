"""Every alias knows its file: local, missing, incomplete, downloading, corrupt or unreadable, on the pages and in
the API; the "not available" filter; "Pull this file"; and the checks a local file's GGUF header puts on an alias.

The cache holds real GGUF files written by the `gguf` package (tests/gguf_files.py) and is scanned for real.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from aliases.models import Alias
from modelfiles.models import Download
from modelfiles.services import modelfile_sync
from tests.api_errors import assert_error
from tests.gguf_files import tiny_gguf
from tests.modelfiles import OTHER_COMMIT, cache_file, make_download

pytestmark = pytest.mark.django_db

REPO = "acme/Tiny-GGUF"
LIST_API = "/api/models"
LIST_URL = reverse("aliases:list")
TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path) -> Path:
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


@pytest.fixture
def shelf(hf_home, alias_factory) -> dict[str, Alias]:
    """One alias per file status, each on a file of its own."""
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    cache_file(hf_home, REPO, "cut.Q4_K_M.gguf", content=tiny_gguf(seed=1)[:-100])
    cache_file(hf_home, REPO, "junk.Q4_K_M.gguf", content=b"GGUF but nothing after")
    for number in (1, 3):
        cache_file(hf_home, REPO, f"big-{number:05d}-of-00003.gguf", content=tiny_gguf(split=(number, 3), seed=number))
    modelfile_sync()
    make_download(repo=REPO, filename="coming.Q4_K_M.gguf", revision="main", status=Download.Status.DOWNLOADING,
                  bytes_total=1000, bytes_done=250)  # fmt: skip
    names = {
        "local": "here.Q4_K_M.gguf",
        "missing": "never-pulled.Q4_K_M.gguf",
        "incomplete": "big-00001-of-00003.gguf",
        "downloading": "coming.Q4_K_M.gguf",
        "corrupt": "cut.Q4_K_M.gguf",
        "unreadable": "junk.Q4_K_M.gguf",
    }
    return {status: alias_factory(alias=f"a-{status}", repo=REPO, filename=name) for status, name in names.items()}


def test_the_api_gives_each_alias_its_file_status(shelf, viewer_client):
    rows = viewer_client.get(LIST_API, {"page_size": 100}).json()["data"]
    statuses = {
        row["alias"]: (row["file_status"], row["file_progress"]) for row in rows if row["alias"].startswith("a-")
    }

    assert statuses == {
        "a-local": ("local", None),
        "a-missing": ("missing", None),
        "a-incomplete": ("incomplete", None),
        "a-downloading": ("downloading", 25.0),
        "a-corrupt": ("corrupt", None),
        "a-unreadable": ("unreadable", None),
    }
    one = viewer_client.get(f"{LIST_API}/a-incomplete").json()
    assert one["file_status"] == "incomplete"


def test_an_alias_that_follows_a_ref_is_local_and_one_pinned_elsewhere_is_missing(
    hf_home, alias_factory, viewer_client
):
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf")
    modelfile_sync()
    alias_factory(alias="by-ref", repo=REPO, filename="here.Q4_K_M.gguf", snapshot="main")
    alias_factory(alias="pinned-elsewhere", repo=REPO, filename="here.Q4_K_M.gguf", snapshot=OTHER_COMMIT)

    rows = {row["alias"]: row["file_status"] for row in viewer_client.get(LIST_API).json()["data"]}

    assert (rows["by-ref"], rows["pinned-elsewhere"]) == ("local", "missing")


def test_the_file_status_of_a_whole_page_costs_the_same_queries_for_3_or_30_aliases(
    hf_home, alias_factory, viewer_client
):
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf")
    modelfile_sync()

    def queries(count: int) -> int:
        Alias.objects.filter(source="user").delete()
        for number in range(count):
            alias_factory(alias=f"row-{number:02d}", repo=REPO, filename="here.Q4_K_M.gguf" if number % 2 else "x.gguf")
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(LIST_URL).status_code == 200
        return len(captured)

    viewer_client.get(LIST_URL)  # the signed-in user and session into the cache (CACHE_URL), as on later pages
    assert queries(3) == queries(30)


def test_the_alias_list_shows_each_file_status_and_filters_the_ones_not_available(shelf, viewer_client):
    page = viewer_client.get(LIST_URL, {"per_page": 100}).content.decode()
    for status in ("local", "missing", "incomplete", "downloading", "corrupt", "unreadable"):
        assert f'data-file-status="{status}"' in page
    assert "downloading 25 %" in page

    unavailable = viewer_client.get(LIST_URL, {"file": "unavailable", "per_page": 100}).content.decode()
    shown = {alias.alias for alias in shelf.values() if f'data-alias="{alias.alias}"' in unavailable}
    assert shown == {"a-missing", "a-incomplete", "a-downloading", "a-corrupt", "a-unreadable"}
    local = viewer_client.get(LIST_URL, {"file": "local", "per_page": 100}).content.decode()
    assert 'data-alias="a-local"' in local and 'data-alias="a-missing"' not in local


def test_the_alias_page_says_what_is_wrong_with_the_file(shelf, client_for, viewer):
    client = client_for(viewer)

    def section(status: str) -> str:
        html = client.get(reverse("aliases:detail", args=[shelf[status].alias])).content.decode()
        return html[html.index('id="alias-file"') :].split("</section>")[0]

    assert 'data-file-status="local"' in section("local") and "context length 2,048" in section("local")
    assert "not in the local cache" in section("missing")
    incomplete = section("incomplete")
    assert "<code>big-00002-of-00003.gguf</code>" in incomplete
    assert "downloading 25 %" in section("downloading")
    # A paused download is on its way but not moving: the badge says so, not "downloading".
    Download.objects.filter(filename="coming.Q4_K_M.gguf").update(status=Download.Status.PAUSED)
    assert "download paused 25 %" in section("downloading") and "Paused: 25 %" in section("downloading")
    assert "damaged" in section("corrupt")
    assert "no readable GGUF header" in section("unreadable")
    assert "Pull" not in section("missing")  # viewers cannot pull


def test_an_operator_pulls_a_missing_file_from_the_alias_page_and_comes_back_to_it(shelf, client_for, operator):
    client = client_for(operator)
    url = reverse("aliases:detail", args=["a-missing"])
    html = client.get(url).content.decode()
    assert 'data-pull="never-pulled.Q4_K_M.gguf"' in html and "Pull this file" in html

    response = client.post(
        reverse("modelfiles:pull"),
        {"repo": REPO, "filename": "never-pulled.Q4_K_M.gguf", "revision": "main", "next": url},
    )

    assert response.status_code == 302 and response["Location"] == url
    download = Download.objects.get(filename="never-pulled.Q4_K_M.gguf")
    assert (download.status, download.requested_by) == ("queued", operator)
    assert 'data-file-status="downloading"' in client.get(url).content.decode()


def test_an_incomplete_split_model_offers_one_pull_for_its_missing_parts(shelf, client_for, operator):
    html = client_for(operator).get(reverse("aliases:detail", args=["a-incomplete"])).content.decode()

    # One button for the set (a pull of any part brings the parts that are missing), named by its part 1.
    assert html.count("data-pull=") == 1 and 'data-pull="big-00001-of-00003.gguf"' in html
    assert "Pull the missing parts" in html


def post_json(client, data):
    return client.post(LIST_API, data=json.dumps(data), content_type="application/json")


def payload(**overrides) -> dict:
    data = {"alias": "mine", "repo": REPO, "filename": "here.Q4_K_M.gguf", "snapshot": "main",
            "chat_template": "embedded", "context_params": {"n_ctx": 1024}}  # fmt: skip
    data.update(overrides)
    return data


def test_n_ctx_above_the_local_files_context_length_is_refused_with_what_it_supports(hf_home, editor_client):
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    modelfile_sync()

    response = post_json(editor_client, payload(context_params={"n_ctx": 1_048_576}))

    error = assert_error(response, 400, "invalid_request_error", param="n_ctx")
    assert "at most 2,048 tokens" in error["fields"]["n_ctx"][0] and "1,048,576" in error["fields"]["n_ctx"][0]
    assert not Alias.objects.filter(alias="mine").exists()
    assert post_json(editor_client, payload(context_params={"n_ctx": 2048})).status_code == 201


def test_an_embedded_template_on_a_file_without_one_is_refused(hf_home, editor_client):
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf", content=tiny_gguf(context_length=2048))
    modelfile_sync()

    error = assert_error(post_json(editor_client, payload()), 400, "invalid_request_error", param="chat_template")
    assert "has no embedded chat template" in error["fields"]["chat_template"][0]
    assert post_json(editor_client, payload(chat_template="chatml")).status_code == 201


def test_a_file_that_is_not_local_puts_no_limit_on_the_alias(editor_client):
    response = post_json(editor_client, payload(context_params={"n_ctx": 1_048_576}))

    assert response.status_code == 201 and response.json()["file_status"] == "missing"


def test_the_edit_form_shows_the_files_limit_on_the_field(hf_home, client_for, editor, alias_factory):
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    modelfile_sync()
    client = client_for(editor)
    response = client.get(reverse("aliases:create"))
    assert response.status_code == 200
    form = {"alias": "mine", "repo": REPO, "filename": "here.Q4_K_M.gguf", "snapshot": "main",
            "chat_template": "embedded", "n_ctx": "4096"}  # fmt: skip

    response = client.post(reverse("aliases:create"), form)

    assert response.status_code == 200
    assert "at most 2,048 tokens" in response.content.decode()
    assert not Alias.objects.filter(alias="mine").exists()


def test_a_missing_split_model_offers_one_pull_for_the_whole_set(client_for, operator, alias_factory):
    alias_factory(alias="split-missing", repo=REPO, filename="huge-00001-of-00002.gguf")

    html = client_for(operator).get(reverse("aliases:detail", args=["split-missing"])).content.decode()

    assert html.count("data-pull=") == 1 and 'data-pull="huge-00001-of-00002.gguf"' in html


HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/aliases/pulled/"}


def test_the_file_section_polls_while_its_download_runs_and_until_the_file_is_listed(
    hf_home, alias_factory, client_for, operator
):
    alias_factory(alias="pulled", repo=REPO, filename="here.Q4_K_M.gguf")
    client = client_for(operator)
    url = reverse("aliases:detail", args=["pulled"])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' not in page and 'data-pull="here.Q4_K_M.gguf"' in page  # nothing to watch yet
    download = make_download(repo=REPO, filename="here.Q4_K_M.gguf", status=Download.Status.DOWNLOADING,
                             bytes_total=1000, bytes_done=400)  # fmt: skip
    page = client.get(url).content.decode()
    poll = f'hx-get="{url}?download={download.pk}" hx-trigger="every 1s"'
    assert poll in page and "Downloading: 40 %" in page

    # The poll answers the section alone, with the progress of the moment.
    Download.objects.filter(pk=download.pk).update(bytes_done=700)
    fragment = client.get(url, {"download": download.pk}, **HTMX)
    html = fragment.content.decode()
    assert "<html" not in html and html.strip().startswith('<section class="mb-4" id="alias-file"')
    assert "Downloading: 70 %" in html and poll in html and "HX-Request" in fragment["Vary"]

    # The worker marks the download completed, then lists the file: the poll in between goes on asking.
    Download.objects.filter(pk=download.pk).update(status=Download.Status.COMPLETED, finished_at=timezone.now())
    html = client.get(url, {"download": download.pk}, **HTMX).content.decode()
    assert 'data-file-status="missing"' in html and "adding the file to the list" in html and poll in html
    assert "Pull this file" not in html
    cache_file(hf_home, REPO, "here.Q4_K_M.gguf")
    modelfile_sync(repo=REPO)
    html = client.get(url, {"download": download.pk}, **HTMX).content.decode()
    assert 'data-file-status="local"' in html and "hx-trigger" not in html and "adding the file" not in html


def test_a_watched_download_that_failed_says_why_and_stops_polling(alias_factory, client_for, operator):
    alias_factory(alias="pulled", repo=REPO, filename="gone.Q4_K_M.gguf")
    download = make_download(repo=REPO, filename="gone.Q4_K_M.gguf", status=Download.Status.FAILED,
                             error_message="gone.Q4_K_M.gguf is not in acme/Tiny-GGUF at main.")  # fmt: skip
    url = reverse("aliases:detail", args=["pulled"])

    html = client_for(operator).get(url, {"download": download.pk}, **HTMX).content.decode()

    assert "The download failed: gone.Q4_K_M.gguf is not in acme/Tiny-GGUF at main." in html
    assert "hx-trigger" not in html and 'data-pull="gone.Q4_K_M.gguf"' in html
    # The Pull button comes back to the page the poll was made from.
    assert 'name="next" value="/aliases/pulled/"' in html


def test_a_completed_download_long_ago_or_of_another_file_does_not_keep_the_page_polling(
    alias_factory, client_for, viewer
):
    alias_factory(alias="pulled", repo=REPO, filename="here.Q4_K_M.gguf")
    url = reverse("aliases:detail", args=["pulled"])
    client = client_for(viewer)
    old = make_download(repo=REPO, filename="here.Q4_K_M.gguf", status=Download.Status.COMPLETED,
                        finished_at=timezone.now() - timedelta(minutes=5))  # fmt: skip
    other = make_download(repo=REPO, filename="other.Q4_K_M.gguf", status=Download.Status.COMPLETED,
                          finished_at=timezone.now())  # fmt: skip
    for watched in (old.pk, other.pk, "not-a-uuid"):
        html = client.get(url, {"download": watched}, **HTMX).content.decode()
        assert 'data-file-status="missing"' in html and "hx-trigger" not in html and "download" not in html.lower()
