"""The OpenAI-compatible gateway (issue 10, item 5) without llama-server: tokens, the error shapes, which aliases it
lists, a router that is not configured or not answering (a closed port), the usage rows.

What the gateway sends to the router (the alias's defaults merged in, the router's id, the usage request of a
stream, the usage chunk taken out again) is checked against a recording HTTP server, since the real router does
not show the request it got. The end-to-end tests with a real llama-server are in test_gateway_llama.py."""

from __future__ import annotations

import json

import httpx
import pytest
from django.test import AsyncClient, Client
from django.urls import reverse

from aliases.services import alias_create
from config.accounts.services import apitoken_create
from config.serving import gateway
from config.serving.gateway import with_defaults
from config.serving.models import ServingUsage
from config.serving.services import UsageCount, UsageKey, servingusage_add
from tests.api_errors import assert_error
from tests.serving.conftest import FILENAME, REPO, run_async
from tests.serving.recorder import recording_server
from tests.workers import free_port

pytestmark = pytest.mark.django_db

MODELS = "/v1/models"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def nothing_kept():
    """The gateway keeps the shelf and verified tokens for a few seconds per process: nothing from another test."""
    gateway.shelf_forget()
    gateway.tokens_forget()
    yield
    gateway.shelf_forget()
    gateway.tokens_forget()
    gateway.database_thread_close()


@pytest.fixture
def token(viewer) -> str:
    return apitoken_create(user=viewer)


@pytest.fixture
def api(token) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def shelf(local_file):
    """`tiny:chat` (file local, with request parameters), `tiny-bare` (local, none set), `far` (file not local)."""
    local_file()
    base = {"repo": REPO, "filename": FILENAME, "snapshot": "main"}
    alias_create(data={**base, "alias": "tiny:chat", "temperature": 0.3, "top_p": 0.8, "max_tokens": 7, "seed": 11,
                       "stop": ["END", "###"], "presence_penalty": 0.1, "frequency_penalty": 0.2,
                       "user": "team-a"}, by=None)  # fmt: skip
    alias_create(data={**base, "alias": "tiny-bare"}, by=None)
    alias_create(data={**base, "alias": "far", "filename": "missing.Q4_K_M.gguf"}, by=None)


def post(client: Client, url: str, body: object) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


# --- the defaults ----------------------------------------------------------------------------------------------------

DEFAULTS = {"temperature": 0.3, "max_tokens": 7, "stop": ["END"], "seed": 11}


def test_a_field_the_request_sets_wins_over_the_alias():
    merged = with_defaults({"model": "m", "temperature": 1.5, "stop": ["x"]}, DEFAULTS)

    assert merged == {"model": "m", "temperature": 1.5, "stop": ["x"], "max_tokens": 7, "seed": 11}


def test_a_null_field_is_unset_and_gets_the_alias_value():
    merged = with_defaults({"model": "m", "temperature": None, "seed": 0}, DEFAULTS)

    assert merged["temperature"] == 0.3
    assert merged["seed"] == 0  # 0 is a value, not unset


@pytest.mark.parametrize("limit", ["max_completion_tokens", "n_predict"])
def test_a_limit_under_another_name_keeps_the_alias_max_tokens_out(limit):
    merged = with_defaults({"model": "m", limit: 3}, DEFAULTS)

    assert "max_tokens" not in merged and merged[limit] == 3


# --- tokens ----------------------------------------------------------------------------------------------------------


def test_no_token_is_401_in_openai_shape(client, shelf):
    response = client.get(MODELS)

    error = assert_error(response, 401, "authentication_error", code="missing_api_key")
    assert "API token" in error["message"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_wrong_token_is_401(shelf):
    response = Client(headers={"Authorization": "Bearer mdk_not-a-token"}).post(
        CHAT, "{}", content_type="application/json"
    )

    assert_error(response, 401, "authentication_error", code="invalid_api_key")


def test_the_session_cookie_is_not_enough(viewer_client, shelf):
    # No CSRF token is asked for here, so a signed-in browser must not be able to spend its user's tokens.
    assert_error(post(viewer_client, CHAT, {"model": "tiny:chat", "messages": HELLO}), 401, "authentication_error")


def test_a_revoked_token_is_refused_once_it_is_no_longer_kept(api, viewer, token):
    from config.accounts.services import apitoken_revoke

    assert api.get(MODELS).status_code == 200
    apitoken_revoke(token=viewer.api_tokens.get())
    gateway.tokens_forget()  # what TOKEN_SECONDS does by itself

    assert_error(api.get(MODELS), 401, "authentication_error", code="invalid_api_key")


# --- what it lists and refuses ---------------------------------------------------------------------------------------


def test_models_lists_the_aliases_that_can_serve_in_openai_shape(api, shelf):
    response = api.get(MODELS)

    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "list"
    # The model alias generated from the local file serves too; `far` (file not local) does not.
    assert [model["id"] for model in answer["data"]] == ["acme/Tiny-GGUF:Q4_K_M", "tiny-bare", "tiny:chat"]
    assert {model["object"] for model in answer["data"]} == {"model"}
    assert {model["owned_by"] for model in answer["data"]} == {"modeldesk"}
    assert all(isinstance(model["created"], int) and model["created"] > 0 for model in answer["data"])
    assert response["Cache-Control"] == "private, no-store"


def test_an_unknown_alias_is_404_and_never_reaches_the_router(api, shelf, settings):
    with recording_server() as router:
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        response = post(api, CHAT, {"model": "nope", "messages": HELLO})

    assert_error(response, 404, "not_found_error", code="model_not_found", param="model")
    assert router.paths == []


def test_an_alias_whose_file_is_not_local_is_409_saying_what_to_do(api, shelf, settings):
    settings.MODELDESK_LLAMA_SERVER_URL = f"http://127.0.0.1:{free_port()}"

    error = assert_error(post(api, CHAT, {"model": "far", "messages": HELLO}), 409, "conflict_error", param="model")

    assert error["code"] == "model_not_served"
    assert "Pull its file" in error["message"] and "/serving/" in error["message"]


def test_no_router_configured_is_503(api, shelf):
    response = post(api, COMPLETIONS, {"model": "tiny:chat", "prompt": "hi"})

    error = assert_error(response, 503, "internal_server_error", code="router_not_configured")
    assert "MODELDESK_LLAMA_SERVER_URL" in error["message"]


def test_a_router_that_is_down_is_502(api, shelf, settings):
    settings.MODELDESK_LLAMA_SERVER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    response = post(api, CHAT, {"model": "tiny:chat", "messages": HELLO})

    error = assert_error(response, 502, "internal_server_error", code="router_unavailable")
    assert settings.MODELDESK_LLAMA_SERVER_URL in error["message"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('{"messages": []}', "invalid_model", "model"),
        ('{"model": 3, "messages": []}', "invalid_model", "model"),
        ('{"model": "tiny:chat"}', "missing_field", "messages"),
        ('{"model": "tiny:chat", "messages": [], "stream": "yes"}', "invalid_type", "stream"),
        (
            '{"model": "tiny:chat", "messages": [], "stream": true, "stream_options": 1}',
            "invalid_type",
            "stream_options",
        ),
    ],
)
def test_a_malformed_request_is_400(api, shelf, body, code, param):
    response = api.post(CHAT, body, content_type="application/json")

    assert_error(response, 400, "invalid_request_error", code=code, param=param)


def test_an_oversized_request_is_refused_in_the_same_shape(api, shelf, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post(api, CHAT, {"model": "tiny:chat", "messages": [{"role": "user", "content": "x" * 2000}]})

    assert_error(response, 413, "invalid_request_error", code="request_too_large")


def test_the_wrong_method_is_405(api, shelf):
    assert_error(api.get(CHAT), 405, "invalid_request_error", code="method_not_allowed")
    assert_error(api.post(MODELS), 405, "invalid_request_error", code="method_not_allowed")


# --- what goes to the router -----------------------------------------------------------------------------------------


def test_the_alias_parameters_fill_what_the_request_leaves_unset(api, shelf, settings):
    with recording_server() as router:
        router.answer = (
            200,
            "application/json",
            b'{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}',
        )
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        response = post(api, CHAT, {"model": "TINY:CHAT", "messages": HELLO, "temperature": 1.0, "seed": None})

    assert response.status_code == 200
    assert response.json()["usage"] == {"prompt_tokens": 5, "completion_tokens": 2}
    assert router.paths == ["/v1/chat/completions"]
    assert router.bodies == [
        {"model": "tiny:CHAT", "messages": HELLO, "temperature": 1.0, "seed": 11, "top_p": 0.8, "max_tokens": 7,
         "frequency_penalty": 0.2, "presence_penalty": 0.1, "stop": ["END", "###"], "user": "team-a"}
    ]  # fmt: skip


def test_an_alias_without_parameters_forwards_the_request_as_it_is(api, shelf, settings):
    with recording_server() as router:
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        post(api, COMPLETIONS, {"model": "tiny-bare", "prompt": "hi", "max_tokens": 3})

    assert router.paths == ["/v1/completions"]
    assert router.bodies == [{"model": "tiny-bare", "prompt": "hi", "max_tokens": 3}]


def test_the_router_error_comes_back_with_its_status_in_openai_shape(api, shelf, settings):
    with recording_server() as router:
        error = {"code": 400, "message": "bad things", "type": "invalid_request_error"}
        router.answer = (400, "application/json", json.dumps({"error": error}).encode())
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        response = post(api, CHAT, {"model": "tiny:chat", "messages": HELLO})

    error = assert_error(response, 400, "invalid_request_error", code="router_error")
    assert error["message"] == "llama-server: bad things"


STREAM = (
    b'data: {"choices": [{"delta": {"content": "a"}, "index": 0}]}\n\n'
    b'data: {"choices": [{"delta": {}, "finish_reason": "length", "index": 0}]}\n\n'
    b'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("client_asks", [False, True])
def test_a_stream_asks_the_router_for_usage_and_passes_the_usage_chunk_only_when_asked(
    token, shelf, settings, client_asks
):
    body = {"model": "tiny-bare", "messages": HELLO, "stream": True}
    if client_asks:
        body["stream_options"] = {"include_usage": True}

    async def stream() -> tuple[object, bytes]:
        # Under ASGI (the async client), as uvicorn serves it: the relay and the usage batch run in this loop.
        headers = {"Authorization": f"Bearer {token}"}
        response = await AsyncClient().post(CHAT, json.dumps(body), content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content
        streamed = b"".join([part async for part in response.streaming_content])
        await gateway.usage_batch().drain()
        return response, streamed

    with recording_server() as router:
        router.answer = (200, "text/event-stream", STREAM)
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        response, streamed = run_async(stream())

    assert response["Content-Type"] == "text/event-stream"
    assert router.bodies[0]["stream_options"] == {"include_usage": True}
    assert (b'"usage"' in streamed) is client_asks
    assert streamed.count(b"data: ") == (4 if client_asks else 3)
    assert streamed.endswith(b"data: [DONE]\n\n")
    usage = ServingUsage.objects.get()
    assert (usage.alias, usage.requests, usage.prompt_tokens, usage.completion_tokens) == ("tiny-bare", 1, 4, 2)


# --- usage -----------------------------------------------------------------------------------------------------------


def test_usage_is_counted_per_alias_user_and_day(api, shelf, settings, viewer, editor):
    answer = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 2}}'
    with recording_server() as router:
        router.answer = (200, "application/json", answer)
        settings.MODELDESK_LLAMA_SERVER_URL = router.url
        for _ in range(3):
            post(api, CHAT, {"model": "tiny:chat", "messages": HELLO})
        post(Client(headers={"Authorization": f"Bearer {apitoken_create(user=editor)}"}), CHAT,
             {"model": "tiny:chat", "messages": HELLO})  # fmt: skip

    rows = {row.user_id: row for row in ServingUsage.objects.filter(alias="tiny:chat")}
    assert (rows[viewer.pk].requests, rows[viewer.pk].prompt_tokens, rows[viewer.pk].completion_tokens) == (3, 15, 6)
    assert (rows[editor.pk].requests, rows[editor.pk].prompt_tokens, rows[editor.pk].completion_tokens) == (1, 5, 2)


@pytest.mark.django_db(transaction=True)
def test_the_batch_adds_up_counts_and_writes_them_in_the_background(viewer):
    async def run() -> None:
        batch = gateway.UsageBatch()
        for usage in ({"prompt_tokens": 3, "completion_tokens": 1}, {"prompt_tokens": 2, "completion_tokens": 4}, None):
            batch.add(*gateway.usage_counted(alias="a", user_id=viewer.pk, usage=usage))
        await batch.drain()

    run_async(run())

    row = ServingUsage.objects.get()
    assert (row.alias, row.user_id, row.requests, row.prompt_tokens, row.completion_tokens) == ("a", viewer.pk, 3, 5, 5)


def test_counts_add_to_the_row_of_the_day(viewer):
    key = gateway.usage_counted(alias="a", user_id=viewer.pk, usage=None)[0]
    servingusage_add(counts={key: UsageCount(requests=1, prompt_tokens=2, completion_tokens=3)})
    servingusage_add(counts={key: UsageCount(requests=2, prompt_tokens=20, completion_tokens=30)})
    servingusage_add(counts={UsageKey(alias="b", user_id=viewer.pk, day=key.day): UsageCount(requests=1)})

    row = ServingUsage.objects.get(alias="a")
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (3, 22, 33)
    assert ServingUsage.objects.count() == 2


def test_the_alias_page_shows_requests_tokens_and_top_users(viewer_client, shelf, viewer, editor):
    day = gateway.usage_counted(alias="tiny:chat", user_id=viewer.pk, usage=None)[0].day

    def key(alias, user):
        return UsageKey(alias=alias, user_id=user.pk, day=day)

    servingusage_add(counts={
        key("tiny:chat", viewer): UsageCount(requests=2, prompt_tokens=10, completion_tokens=4),
        key("tiny:chat", editor): UsageCount(requests=1, prompt_tokens=1500, completion_tokens=7),
        key("tiny-bare", editor): UsageCount(requests=9, prompt_tokens=9, completion_tokens=9),
    })  # fmt: skip

    body = viewer_client.get(reverse("aliases:detail", args=["tiny:chat"])).content.decode()

    panel = body[body.index('data-testid="gateway-usage"') :]
    assert 'data-usage="requests">3<' in panel
    assert 'data-usage="prompt_tokens">1,510<' in panel
    assert 'data-usage="completion_tokens">11<' in panel
    users = panel[panel.index('data-testid="gateway-top-users"') : panel.index("</table>")]
    assert users.index(editor.username) < users.index(viewer.username)  # most tokens first


def test_the_alias_page_of_an_unused_alias_says_how_to_use_it(viewer_client, shelf):
    body = viewer_client.get(reverse("aliases:detail", args=["tiny-bare"])).content.decode()

    assert "No requests yet" in body and "/v1/" in body


# --- under uvicorn -----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_site_and_the_gateway_work_under_uvicorn(uvicorn_site, token, shelf, settings):
    import openai

    settings.MODELDESK_LLAMA_SERVER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    site = uvicorn_site()

    with httpx.Client(base_url=site.url) as browser:
        login = browser.get("/login/")
        assert login.status_code == 200 and "Sign in" in login.text
        css = browser.get("/static/bootstrap/css/bootstrap.min.css")
        assert css.status_code == 200 and len(css.content) > 100_000
        assert browser.head("/static/bootstrap/css/bootstrap.min.css").status_code == 200
        # The gateway's own handler runs none of the site's middleware: its views set these headers themselves.
        listed = browser.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert listed.headers["Cache-Control"] == "private, no-store"
        assert listed.headers["X-Content-Type-Options"] == "nosniff"
        assert (
            browser.get("/v1/nothing-here", headers={"Authorization": f"Bearer {token}"}).json()["error"]["code"]
            == "not_found"
        )
        elsewhere = browser.get("/v1/models", headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})
        assert elsewhere.status_code == 400
    client = openai.OpenAI(base_url=f"{site.url}/v1", api_key=token, max_retries=0)
    assert [model.id for model in client.models.list()] == ["acme/Tiny-GGUF:Q4_K_M", "tiny-bare", "tiny:chat"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=HELLO)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="tiny:chat", messages=HELLO)
    assert down.value.status_code == 502 and down.value.body["code"] == "router_unavailable"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{site.url}/v1", api_key="mdk_wrong", max_retries=0).models.list()
    assert "Warning" not in site.log_text()
