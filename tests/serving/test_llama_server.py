"""End to end with a real llama-server in router mode: the preset ModelDesk writes is what the router serves, with
our flags, under the ids we compute; a chat completion honours n-predict; a changed or deleted alias reaches the
running router within seconds (the preset rewritten on commit, the router told to reload), with no restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from aliases.services import alias_delete, alias_update
from config.serving.preset import preset_build
from config.serving.router import router_id
from tests.serving.conftest import LLAMA_FILENAME as FILENAME
from tests.serving.conftest import LLAMA_REPO as REPO
from tests.serving.conftest import SECONDS_TO_SEE_A_CHANGE, http, option, snapshot_path, wait_for

pytestmark = [pytest.mark.llama_server, pytest.mark.django_db(transaction=True)]


def test_the_router_serves_the_preset_modeldesk_writes(router, shelf, hf_home):
    preset = preset_build(template_dir=shelf.parent)
    models = router.models()

    served = {item.router_id for item in preset.served}
    assert served == {"tiny:CHAT", "tiny-plain", "tiny:TL", router_id(f"{REPO}:F32")}
    assert set(models) == served
    assert {model["source"] for model in models.values()} == {"preset"}
    assert {item.alias: item.reason for item in preset.unserved}["far"].startswith("The file is not in the local")

    args = router.args("tiny:CHAT")
    path = str(snapshot_path(hf_home, REPO, FILENAME))
    for name, value in [("--model", path), ("--ctx-size", "256"), ("--n-predict", "8"), ("--parallel", "1"),
                        ("--threads", "1"), ("--seed", "42"), ("--temperature", "0.5"), ("--top-p", "0.9"),
                        ("--presence-penalty", "0.25"), ("--frequency-penalty", "0.5"),
                        ("--chat-template", "chatml")]:  # fmt: skip
        assert option(args, name) == value, (name, args)
    assert option(router.args("tiny-plain"), "--ctx-size") == "128"
    assert option(router.args("tiny-plain"), "--chat-template") is None
    template_file = option(router.args("tiny:TL"), "--chat-template-file")
    assert template_file == str(shelf.parent / "chat-template.tinyllama.jinja") and Path(template_file).is_file()


def test_a_chat_completion_honours_the_alias_n_predict(router):
    assert http(f"{router.url}/models/load", {"model": "tiny:CHAT"}) == {"success": True}
    wait_for(lambda: router.models()["tiny:CHAT"]["status"]["value"] == "loaded", seconds=60, what="tiny:CHAT loaded")

    answer = http(f"{router.url}/v1/chat/completions",
                  {"model": "tiny:CHAT", "messages": [{"role": "user", "content": "Say something."}]})  # fmt: skip

    assert answer["usage"]["completion_tokens"] == 8
    assert answer["choices"][0]["finish_reason"] == "length"


def test_a_changed_alias_reaches_the_running_router(router):
    pid = router.process.pid
    from aliases.models import Alias

    alias = Alias.objects.get(alias="tiny:chat")

    alias_update(alias=alias, data={"temperature": 1.25, "n_predict": 4}, expected_version=alias.version, by=None)

    args = wait_for(
        lambda: (found := router.args("tiny:CHAT")) and option(found, "--temperature") == "1.25" and found,
        seconds=SECONDS_TO_SEE_A_CHANGE,
        what="the new temperature on the router",
    )
    assert option(args, "--n-predict") == "4"

    alias_delete(alias=Alias.objects.get(alias="tiny-plain"), by=None)

    wait_for(lambda: "tiny-plain" not in router.models(), seconds=SECONDS_TO_SEE_A_CHANGE, what="tiny-plain gone")
    assert router.process.pid == pid and router.process.poll() is None  # the same router, never restarted
