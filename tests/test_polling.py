"""Live updates without waste, at the HTTP level: a poll that finds nothing changed is a bodiless 304, and a
signed-out poll or search reloads the page on the login form instead of swapping the form into a fragment."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from modelfiles.models import Download
from tests.modelfiles import make_download

pytestmark = pytest.mark.django_db

ACTIVE_URL = reverse("modelfiles:downloads-active")
DOWNLOADS_URL = reverse("modelfiles:downloads")


def poll(client: Client, etag: str | None = None, *, page: str = DOWNLOADS_URL):
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": f"http://testserver{page}"}
    if etag is not None:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return client.get(ACTIVE_URL, **headers)


def test_an_unchanged_poll_is_a_bodiless_304(client_for, viewer, django_assert_max_num_queries):
    make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0, eta=18.0)
    client = client_for(viewer)
    first = poll(client)
    assert first.status_code == 200
    assert first["ETag"].startswith('"')
    assert "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    assert "HX-Request" in first["Vary"]
    # At most the session (kept in the database unless the cache is shared): the user, their permissions and the
    # active rows come from the cache; no template rendered.
    with django_assert_max_num_queries(1):
        again = poll(client, first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert again.templates == []


def test_a_change_people_would_not_see_is_not_a_change(client_for, viewer):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=10**9, bytes_done=10**8, speed=2.0e6)
    client = client_for(viewer)
    etag = poll(client)["ETag"]
    # A few bytes more and a slightly other speed read the same ("95.4 MB of 953.7 MB", "1.9 MB/s").
    Download.objects.filter(pk=download.pk).update(bytes_done=10**8 + 10, speed=2.001e6)
    assert poll(client, etag).status_code == 304


@pytest.mark.parametrize(
    "change",
    [
        {"bytes_done": 500},
        {"speed": 9000.0},
        {"eta": 1.0},
        {"status": Download.Status.VERIFYING},
        {"attempts": 3},
        {"error_message": "The Hub answered 503; will try again."},
    ],
)
def test_a_visible_change_sends_the_new_fragment(client_for, viewer, change):
    download = make_download(
        status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0, eta=18.0, attempts=1
    )
    client = client_for(viewer)
    first = poll(client)
    Download.objects.filter(pk=download.pk).update(**change)
    second = poll(client, first["ETag"])
    assert second.status_code == 200
    assert second["ETag"] != first["ETag"]
    assert b'data-testid="active-downloads"' in second.content


def test_a_finished_download_ends_the_polling(client_for, viewer):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=900)
    client = client_for(viewer)
    first = poll(client)
    Download.objects.filter(pk=download.pk).update(status=Download.Status.COMPLETED)
    last = poll(client, first["ETag"])
    assert last.status_code == 200
    assert b'hx-trigger="every 1s"' not in last.content


def test_what_a_person_may_do_is_part_of_the_fingerprint(client_for, viewer, operator):
    make_download(status=Download.Status.QUEUED)
    viewer_etag = poll(client_for(viewer))["ETag"]
    operator_client = client_for(operator)
    operator_poll = poll(operator_client, viewer_etag)
    # The operator's fragment has Cancel buttons: a copy cached for someone else is never reused.
    assert operator_poll.status_code == 200
    assert b">Cancel</button>" in operator_poll.content
    assert poll(operator_client, operator_poll["ETag"]).status_code == 304


def test_the_page_the_poll_comes_from_is_part_of_the_fingerprint(client_for, operator):
    make_download(status=Download.Status.QUEUED)
    client = client_for(operator)
    etag = poll(client, page=DOWNLOADS_URL)["ETag"]
    # Cancel buttons bring the operator back to the page they are on: another page, another fragment.
    moved = poll(client, etag, page=f"{DOWNLOADS_URL}?status=failed")
    assert moved.status_code == 200
    assert b'name="next" value="/files/downloads/?status=failed"' in moved.content


def test_a_signed_out_poll_reloads_the_page_on_the_login_form(client):
    make_download(status=Download.Status.QUEUED)
    response = poll(client, page=f"{DOWNLOADS_URL}?sort=-created_at")
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{reverse('login')}?next=/files/downloads/%3Fsort%3D-created_at"


def test_a_signed_out_search_reloads_the_page_on_the_login_form(client):
    response = client.get(
        reverse("aliases:list"),
        {"q": "llama"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/aliases/?sort=alias",
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{reverse('login')}?next=/aliases/%3Fsort%3Dalias"


def test_signed_out_requests_without_htmx_are_redirected_as_before(client):
    response = client.get(reverse("aliases:list"), {"q": "llama"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/aliases/%3Fq%3Dllama"


@pytest.fixture
def fresh_fragments():
    from django.core.cache import caches

    caches["default"].clear()
    yield
    caches["default"].clear()


def test_viewers_who_see_the_same_share_one_rendering(client_for, make_user, fresh_fragments):
    make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0, eta=18.0)
    first_viewer, second_viewer = client_for(make_user("viewer", "vera")), client_for(make_user("viewer", "vic"))
    first = poll(first_viewer)
    second = poll(second_viewer)
    assert first.templates and not second.templates  # rendered once, then served from the cache
    assert first["ETag"] != second["ETag"]  # each viewer's copy is their own
    assert first.content == second.content


def test_buttons_in_a_shared_rendering_carry_each_visitors_csrf_token(client_for, make_user, fresh_fragments):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0)
    olga, otto = make_user("operator", "olga"), make_user("operator", "otto")
    olga_client, otto_client = client_for(olga), client_for(otto)
    olga_client.get(DOWNLOADS_URL)  # a page first, as in a browser: it sets the CSRF cookie the poll relies on
    otto_client.get(DOWNLOADS_URL)
    first, second = poll(olga_client), poll(otto_client)
    assert first.templates and not second.templates
    tokens = [re.findall(rb'name="csrfmiddlewaretoken" value="([^"]+)"', r.content) for r in (first, second)]
    assert tokens[0] and tokens[1] and set(tokens[0]).isdisjoint(tokens[1])
    assert first.content.replace(tokens[0][0], b"") == second.content.replace(tokens[1][0], b"")
    # Each token works for its own visitor: Pause from the shared rendering is accepted.
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = otto_client.cookies
    pause = strict.post(reverse("modelfiles:download-pause", args=[download.pk]),
                        {"csrfmiddlewaretoken": tokens[1][0].decode(), "next": DOWNLOADS_URL})  # fmt: skip
    assert pause.status_code == 302
    assert Download.objects.get(pk=download.pk).status in (Download.Status.PAUSED, Download.Status.QUEUED)


def test_a_change_renders_once_more_for_everyone(client_for, make_user, fresh_fragments):
    download = make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0)
    viewers = [client_for(make_user("viewer", f"v{number}")) for number in range(3)]
    assert [bool(poll(client).templates) for client in viewers] == [True, False, False]
    Download.objects.filter(pk=download.pk).update(bytes_done=600)
    answers = [poll(client) for client in viewers]
    assert [bool(answer.templates) for answer in answers] == [True, False, False]
    assert all(b"600 bytes" in answer.content for answer in answers)


def test_a_rendering_kept_by_another_process_carries_this_visitors_token(client_for, make_user, fresh_fragments):
    import importlib

    from config import fragments

    make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100, speed=50.0)
    olga_client, otto_client = client_for(make_user("operator", "olga")), client_for(make_user("operator", "otto"))
    otto_client.get(DOWNLOADS_URL)
    assert poll(olga_client).templates
    # As a second web process sees it: the module imported afresh, the rendering read from the shared cache.
    importlib.reload(fragments)
    served = poll(otto_client)
    assert not served.templates
    assert b"csrf-placeholder" not in served.content
    token = re.findall(rb'name="csrfmiddlewaretoken" value="([^"]+)"', served.content)[0].decode()
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = otto_client.cookies
    pause = strict.post(reverse("modelfiles:download-pause", args=[Download.objects.get().pk]),
                        {"csrfmiddlewaretoken": token, "next": DOWNLOADS_URL})  # fmt: skip
    assert pause.status_code == 302
