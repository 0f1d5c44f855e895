"""The runtime view (issue 10, item 3): each alias's state on the router on the alias list, the alias page and the
serving page; load and unload from those pages and the API; a router that is down answered quickly with a note.

The tests marked `llama_server` run a real llama-server router over the preset ModelDesk writes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.urls import reverse

from aliases.services import alias_create
from config.audit.models import AuditEntry
from config.serving.runtime import router_status_forget
from modelfiles.services import modelfile_sync
from tests.api_errors import assert_error
from tests.gguf_files import tiny_llama_gguf
from tests.modelfiles import cache_file
from tests.serving.conftest import FILENAME, REPO, wait_for
from tests.serving.recorder import recording_server
from tests.workers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
on_the_router = pytest.mark.llama_server

LIST_URL = reverse("aliases:list")
MODELS_API = "/api/serving/models"
LOAD_SECONDS = 60


def detail_url(name: str) -> str:
    return reverse("aliases:detail", args=[name])


def action_api(name: str, action: str) -> str:
    return f"/api/serving/models/{name}/{action}"


def list_row(body: str, name: str) -> str:
    """The alias list's row of `name` (its <tr> ... </tr>)."""
    start = body.index(f'data-alias="{name}"')
    return body[start : body.index("</tr>", start)]


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def page_shows(client, url: str, marker: str) -> str:
    """The page once it shows `marker` (the router's answer is kept a few seconds, and loading takes a moment)."""

    def shown() -> str | None:
        body = page(client, url)
        return body if marker in body else None

    return wait_for(shown, seconds=LOAD_SECONDS, what=f"{marker} on {url}")


def api_state(client, model_id: str) -> dict:
    router_status_forget()
    response = client.get(MODELS_API)
    assert response.status_code == 200, response.content
    return {model["id"]: model for model in response.json()["data"]}[model_id]


# --- with a real llama-server ------------------------------------------------------------------------------------


@on_the_router
def test_states_show_on_the_list_and_the_alias_page_before_and_after_a_load(
    router, operator, operator_client, viewer_client
):
    # A name with a colon: the router lists it as tiny:CHAT, the pages show it under tiny:chat.
    assert router.models()["tiny:CHAT"]["status"]["value"] == "unloaded"
    row = list_row(page(operator_client, LIST_URL), "tiny:chat")
    assert 'data-router-state="unloaded"' in row
    detail = page(operator_client, detail_url("tiny:chat"))
    assert 'data-testid="on-the-server"' in detail and "<code>tiny:CHAT</code>" in detail
    assert "--ctx-size 256" in detail and "--chat-template chatml" in detail  # the exact command line
    assert 'data-router-action="load"' in detail
    assert 'data-router-action="load"' not in page(viewer_client, detail_url("tiny:chat"))  # viewers only read

    response = operator_client.post(reverse("serving:load", args=["tiny:chat"]), {"next": detail_url("tiny:chat")})

    assert response.status_code == 302 and response["Location"] == detail_url("tiny:chat")
    # The message is shown once, on the page the redirect lands on (which may come before the model is up).
    assert "Loading tiny:chat on the router (as tiny:CHAT)." in page(operator_client, detail_url("tiny:chat"))
    detail = page_shows(operator_client, detail_url("tiny:chat"), 'data-router-state="loaded"')
    assert 'data-router-action="unload"' in detail
    assert router.models()["tiny:CHAT"]["status"]["value"] == "loaded"
    assert 'data-router-state="loaded"' in list_row(page(operator_client, LIST_URL), "tiny:chat")
    assert 'data-router-state="unloaded"' in list_row(page(operator_client, LIST_URL), "tiny-plain")
    serving = page(operator_client, reverse("serving:index"))
    assert 'data-router-id="tiny:CHAT"' in serving and 'data-router-state="loaded"' in serving

    response = operator_client.post(reverse("serving:unload", args=["tiny:chat"]))

    assert response.status_code == 302
    page_shows(operator_client, detail_url("tiny:chat"), 'data-router-state="unloaded"')
    entries = AuditEntry.objects.filter(object_repr="tiny:chat", action__in=["load", "unload"]).order_by("pk")
    assert [(entry.action, entry.actor_name, entry.after["router_id"]) for entry in entries] == [
        ("load", operator.get_username(), "tiny:CHAT"),
        ("unload", operator.get_username(), "tiny:CHAT"),
    ]


@on_the_router
def test_load_and_unload_through_the_api(router, operator, operator_client, editor_client, viewer_client):
    models = {model["id"]: model for model in viewer_client.get(MODELS_API).json()["data"]}
    assert models["tiny:CHAT"]["alias"] == "tiny:chat" and models["tiny:TL"]["alias"] == "tiny:tl"
    assert models["tiny:CHAT"]["state"] == "unloaded" and models["tiny:CHAT"]["exit_code"] is None
    assert "--n-predict" in models["tiny:CHAT"]["args"]

    assert_error(viewer_client.post(action_api("tiny:tl", "load")), 403, "forbidden_error")
    # Editors change what is served, not what runs (DESIGN.md's roles).
    assert_error(editor_client.post(action_api("tiny:tl", "load")), 403, "forbidden_error")
    assert_error(operator_client.post(action_api("nope", "load")), 404, "not_found_error", code="alias_not_found")
    error = assert_error(operator_client.post(action_api("far", "load")), 409, "conflict_error", code="not_served")
    assert "not in the local" in error["message"]

    response = operator_client.post(action_api("tiny:tl", "load"))

    assert response.status_code == 200, response.content
    assert response.json()["id"] == "tiny:TL" and response.json()["alias"] == "tiny:tl"
    wait_for(lambda: api_state(viewer_client, "tiny:TL")["state"] == "loaded", seconds=LOAD_SECONDS, what="loaded")

    response = operator_client.post(action_api("tiny:tl", "unload"))

    assert response.status_code == 200, response.content
    wait_for(lambda: api_state(viewer_client, "tiny:TL")["state"] == "unloaded", seconds=LOAD_SECONDS, what="gone")
    assert AuditEntry.objects.filter(object_repr="tiny:tl", action="unload", actor=operator).exists()


@pytest.fixture
def broken(shelf, hf_home):
    """An alias whose file the scan read as a GGUF but that is cut short on disk now: its model cannot start."""
    content = tiny_llama_gguf(chat_template="{{ messages }}")
    link = cache_file(hf_home, "acme/Broken-GGUF", "broken.F32.gguf", content=content)
    modelfile_sync()
    with open(link, "wb") as blob:  # through the snapshot link: the blob itself
        blob.write(content[: len(content) // 2])
    alias_create(data={"alias": "broken", "repo": "acme/Broken-GGUF", "filename": "broken.F32.gguf",
                       "snapshot": "main"}, by=None)  # fmt: skip
    assert "[broken]" in shelf.read_text()


@on_the_router
def test_a_model_that_cannot_start_shows_failed_with_its_exit_code(broken, router, operator_client):
    response = operator_client.post(action_api("broken", "load"))
    assert response.status_code == 200, response.content

    failed = wait_for(lambda: (model := api_state(operator_client, "broken"))["state"] == "failed" and model,
                      seconds=LOAD_SECONDS, what="broken failed")  # fmt: skip

    assert failed["exit_code"] not in (None, 0)
    detail = page_shows(operator_client, detail_url("broken"), 'data-router-state="failed"')
    assert f"failed (exit {failed['exit_code']})" in detail
    assert 'data-router-action="load"' in detail  # it may be tried again


# --- without a llama-server --------------------------------------------------------------------------------------


@pytest.fixture
def served(local_file, alias_factory):
    local_file()
    return alias_factory(alias="tiny:chat", repo=REPO, filename=FILENAME)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers (the router hung)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("down", ["closed", "silent"])
def test_a_router_that_is_down_gives_a_note_and_a_quick_answer(down, request, served, settings, operator_client):
    url = f"http://127.0.0.1:{free_port()}" if down == "closed" else request.getfixturevalue("silent_url")
    settings.MODELDESK_LLAMA_SERVER_URL = url
    note = f"llama-server at {url} is not answering"

    for target in (detail_url("tiny:chat"), LIST_URL, reverse("serving:index")):
        router_status_forget()
        started = time.monotonic()
        body = page(operator_client, target)
        assert time.monotonic() - started < 3, target
        assert note in body or 'data-router-state="down"' in body, target
    assert 'data-router-state="down"' in list_row(page(operator_client, LIST_URL), "tiny:chat")

    router_status_forget()
    error = assert_error(operator_client.get(MODELS_API), 503, "internal_server_error", code="router_unavailable")
    assert note in error["message"]
    if down == "closed":
        error = assert_error(operator_client.post(action_api("tiny:chat", "load")), 503, "internal_server_error",
                             code="router_unavailable")  # fmt: skip
        response = operator_client.post(reverse("serving:load", args=["tiny:chat"]), follow=True)
        assert note in response.content.decode()


def test_the_list_asks_the_router_once_per_page_and_keeps_the_answer(served, settings, viewer_client, alias_factory):
    for number in range(5):
        alias_factory(alias=f"more-{number}", repo=REPO, filename=FILENAME)
    with recording_server() as router:
        settings.MODELDESK_LLAMA_SERVER_URL = router.url

        body = page(viewer_client, LIST_URL)
        page(viewer_client, LIST_URL)
        page(viewer_client, detail_url("tiny:chat"))

    assert router.paths == ["/models"]
    assert 'data-column="server"' in body and 'data-router-state="absent"' in list_row(body, "tiny:chat")


def test_without_a_router_the_pages_show_nothing_of_it(served, viewer_client):
    assert 'data-column="server"' not in page(viewer_client, LIST_URL)
    assert 'data-testid="on-the-server"' not in page(viewer_client, detail_url("tiny:chat"))
    assert 'data-testid="router-models"' not in page(viewer_client, reverse("serving:index"))
    assert_error(viewer_client.get(MODELS_API), 409, "conflict_error", code="router_not_configured")


def test_viewers_may_not_load_or_unload(served, settings, viewer_client):
    settings.MODELDESK_LLAMA_SERVER_URL = f"http://127.0.0.1:{free_port()}"

    for action in ("load", "unload"):
        assert viewer_client.post(reverse(f"serving:{action}", args=["tiny:chat"])).status_code == 403
        assert_error(viewer_client.post(action_api("tiny:chat", action)), 403, "forbidden_error")
    assert not AuditEntry.objects.filter(action__in=["load", "unload"]).exists()


def test_the_server_column_is_rendered_by_the_fast_body(served):
    from aliases.models import Alias
    from aliases.tables import AliasTable

    table = AliasTable(Alias.objects.all())

    assert table._cell_plan(table.columns["server"])[2] is not None  # a render_ call per cell, no template
