"""The gateway end to end (issue 10, items 5 and 6): a real llama-server router over the preset ModelDesk writes,
the site under a real uvicorn, and OpenAI's own Python client talking to it by alias name."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from aliases.models import Alias
from aliases.services import alias_create, alias_delete, alias_update
from config.accounts.services import apitoken_create
from config.serving.models import ServingUsage
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_llama_gguf
from tests.modelfiles import cache_file
from tests.serving.conftest import (
    EMBEDDED,
    LLAMA_FILENAME,
    LLAMA_REPO,
    SECONDS_TO_SEE_A_CHANGE,
    http,
    option,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.llama_server]

LOAD_SECONDS = 60
PROMPT = [{"role": "user", "content": "Tell me a story."}]


@pytest.fixture
def site(router, uvicorn_site):
    return uvicorn_site()


@pytest.fixture
def token(viewer) -> str:
    return apitoken_create(user=viewer)


@pytest.fixture
def client(site, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=token, max_retries=0, timeout=60)


def gw_alias(name: str, **params) -> Alias:
    data = {"alias": name, "repo": LLAMA_REPO, "filename": LLAMA_FILENAME, "snapshot": "main",
            "chat_template": "chatml", "n_ctx": 256, "n_parallel": 1, "n_threads": 1}  # fmt: skip
    return alias_create(data={**data, **params}, by=None)


def loaded(router, model_id: str) -> None:
    """Load `model_id` on the router (started with --no-models-autoload) and wait until it is up."""
    wait_for(lambda: model_id in router.models(), seconds=SECONDS_TO_SEE_A_CHANGE, what=f"{model_id} in the preset")
    http(f"{router.url}/models/load", {"model": model_id})
    wait_for(lambda: router.models()[model_id]["status"]["value"] == "loaded", seconds=LOAD_SECONDS,
             what=f"{model_id} loaded")  # fmt: skip


def usage_rows(name: str) -> list[tuple[int, int, int]]:
    return [(row.requests, row.prompt_tokens, row.completion_tokens) for row in ServingUsage.objects.filter(alias=name)]


def test_a_chat_completion_by_alias_name_honours_its_max_tokens_and_stop_words(router, client, viewer):
    gw_alias("tiny:gw", temperature=0.0, seed=7, max_tokens=24)
    loaded(router, "tiny:GW")
    assert "tiny:gw" in [model.id for model in client.models.list()]

    # Greedy sampling: the same prompt gives the same text. First without stop words (an explicit empty list is
    # the request's own choice), to find one that cuts it.
    free = client.chat.completions.create(model="tiny:gw", messages=PROMPT, stop=[])
    text = free.choices[0].message.content
    assert free.model == "tiny:gw"  # the name asked for, not the router's id (tiny:GW)
    assert 0 < free.usage.completion_tokens <= 24
    assert free.choices[0].finish_reason == "length"
    # The model's text is noise (byte tokens, some not UTF-8): a stop word of two ASCII letters or digits from it.
    stop = next(
        text[i : i + 2] for i in range(2, len(text) - 1) if text[i : i + 2].isascii() and text[i : i + 2].isalnum()
    )
    alias = Alias.objects.get(alias="tiny:gw")
    alias_update(alias=alias, data={"stop": [stop]}, expected_version=alias.version, by=None)

    def cut():
        answer = client.chat.completions.create(model="tiny:gw", messages=PROMPT)
        return answer if answer.choices[0].finish_reason == "stop" else None

    stopped = wait_for(cut, seconds=SECONDS_TO_SEE_A_CHANGE, what="the alias's stop word applied")
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.usage.completion_tokens < free.usage.completion_tokens

    # max_tokens: the alias's, unless the request sets its own.
    limited = client.chat.completions.create(model="TINY:GW", messages=PROMPT, stop=[], max_tokens=3)
    assert limited.usage.completion_tokens == 3 and limited.choices[0].finish_reason == "length"


def test_a_stream_arrives_in_several_chunks_and_is_counted(router, client, viewer, site):
    gw_alias("tiny:stream", max_tokens=12)
    loaded(router, "tiny:STREAM")
    # llama.cpp's own field, passed through as the request gives it: random weights may end the answer early.
    never_end = {"extra_body": {"ignore_eos": True}}

    chunks = list(client.chat.completions.create(model="tiny:stream", messages=PROMPT, stream=True, stop=[],
                                                 **never_end))  # fmt: skip

    assert len(chunks) >= 5
    assert {chunk.model for chunk in chunks} == {"tiny:stream"}
    assert all(chunk.choices for chunk in chunks)  # no usage chunk: this client did not ask for one
    assert chunks[-1].choices[0].finish_reason == "length"
    with_usage = list(client.chat.completions.create(model="tiny:stream", messages=PROMPT, stream=True, stop=[],
                                                     stream_options={"include_usage": True}, **never_end))  # fmt: skip
    assert with_usage[-1].usage.completion_tokens == 12 and not with_usage[-1].choices
    plain = client.completions.create(model="tiny:stream", prompt="Once upon a time", **never_end)
    assert plain.usage.completion_tokens == 12

    prompts = with_usage[-1].usage.prompt_tokens
    expected = [(3, 2 * prompts + plain.usage.prompt_tokens, 36)]
    wait_for(lambda: usage_rows("tiny:stream") == expected, seconds=5, what=f"usage {expected}")
    assert ServingUsage.objects.get(alias="tiny:stream").user == viewer
    # The rest of the site is served by the same process.
    assert httpx.get(f"{site.url}/login/").status_code == 200


def test_a_changed_temperature_reloads_the_router_and_a_deleted_alias_is_gone(router, client):
    alias = gw_alias("tiny:warm", temperature=0.5, max_tokens=4)
    loaded(router, "tiny:WARM")
    # Sampled at 0.5 from random weights the answer may end early (EOS): ignore_eos makes max_tokens the bound.
    answer = client.chat.completions.create(model="tiny:warm", messages=PROMPT, extra_body={"ignore_eos": True})
    assert answer.usage.completion_tokens == 4 and answer.choices[0].finish_reason == "length"

    alias_update(alias=alias, data={"temperature": 1.5}, expected_version=alias.version, by=None)
    wait_for(lambda: option(router.args("tiny:WARM"), "--temperature") == "1.5", seconds=SECONDS_TO_SEE_A_CHANGE,
             what="the new temperature on the router's command line")  # fmt: skip

    alias_delete(alias=Alias.objects.get(alias="tiny:warm"), by=None)
    wait_for(lambda: "tiny:WARM" not in router.models(), seconds=SECONDS_TO_SEE_A_CHANGE, what="gone from the router")

    def refused():
        try:
            client.chat.completions.create(model="tiny:warm", messages=PROMPT)
        except openai.NotFoundError as exc:
            return exc
        return None

    gone = wait_for(refused, seconds=SECONDS_TO_SEE_A_CHANGE, what="the gateway's 404")
    assert gone.body["code"] == "model_not_found"
    assert "tiny:warm" not in [model.id for model in client.models.list()]


def test_a_router_error_comes_back_with_its_status(router, client):
    gw_alias("tiny:cold")  # in the preset, not loaded (the router does not load on request here)
    wait_for(lambda: "tiny:COLD" in router.models(), seconds=SECONDS_TO_SEE_A_CHANGE, what="tiny:COLD listed")

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny:cold", messages=PROMPT)

    assert refused.value.body["message"].startswith("llama-server: ")
    assert "not loaded" in refused.value.body["message"]


def processing(router, model_id: str) -> bool:
    slots = httpx.get(f"{router.url}/slots", params={"model": model_id}, timeout=10).json()
    return any(slot["is_processing"] for slot in slots)


def test_a_client_that_goes_away_stops_the_generation_on_the_router(router, site, token, hf_home):
    # Room for a long answer: left alone, the router would write 16,000 tokens (about half a minute here; the
    # model never ends it with ignore_eos).
    cache_file(
        hf_home, LLAMA_REPO, "long.F32.gguf", content=tiny_llama_gguf(chat_template=EMBEDDED, context_length=16384)
    )
    modelfile_sync()
    gw_alias("tiny:long", filename="long.F32.gguf", n_ctx=16384, max_tokens=16000, temperature=1.0)
    loaded(router, "tiny:LONG")
    body = {"model": "tiny:long", "messages": PROMPT, "stream": True, "stop": [], "ignore_eos": True}
    headers = {"Authorization": f"Bearer {token}"}

    with (
        httpx.Client(base_url=site.url, headers=headers, timeout=30) as browser,
        browser.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        events = response.iter_lines()
        assert all(next(events) is not None for _ in range(20))
        assert processing(router, "tiny:LONG")
        # Leaving the block closes the connection halfway through the answer.
    closed = time.monotonic()

    wait_for(lambda: not processing(router, "tiny:LONG"), seconds=3, what="the router's slot idle again")
    assert time.monotonic() - closed < 3
