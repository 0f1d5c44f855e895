"""End to end with a real llama-server in router mode: the preset ModelDesk writes is what the router serves, with
our flags, under the ids we compute; a chat completion honours n-predict; a changed or deleted alias reaches the
running router within seconds (the preset rewritten on commit, the router told to reload), with no restart."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aliases.services import alias_create, alias_delete, alias_update
from config.serving.preset import preset_build
from config.serving.router import router_id
from tests.gguf_files import tiny_llama_gguf
from tests.serving.conftest import snapshot_path
from tests.workers import free_port, stop_session

pytestmark = [pytest.mark.llama_server, pytest.mark.django_db(transaction=True)]

REPO = "acme/Tiny-Llama-GGUF"
FILENAME = "tiny.F32.gguf"
EMBEDDED = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
STARTUP_SECONDS = 60
SECONDS_TO_SEE_A_CHANGE = 10


def http(url: str, body: dict | None = None, *, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def wait_for(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds}s (last: {last!r})")


@dataclass
class Router:
    url: str
    process: subprocess.Popen
    log: Path

    def models(self) -> dict[str, dict]:
        return {model["id"]: model for model in http(f"{self.url}/models")["data"]}

    def args(self, model_id: str) -> list[str]:
        return self.models()[model_id]["status"]["args"]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.fixture
def shelf(hf_home, settings, tmp_path) -> Path:
    """The tiny model in the test cache, the preset path set, and three aliases on it (plus one not local)."""
    from tests.modelfiles import cache_file

    cache_file(hf_home, REPO, FILENAME, content=tiny_llama_gguf(chat_template=EMBEDDED))
    from modelfiles.services import modelfile_sync

    preset_file = tmp_path / "router" / "models.ini"
    settings.MODELDESK_LLAMA_PRESET_PATH = str(preset_file)
    modelfile_sync()
    base = {"repo": REPO, "filename": FILENAME, "snapshot": "main"}
    alias_create(data={**base, "alias": "tiny:chat", "chat_template": "chatml", "n_ctx": 256, "n_predict": 8,
                       "n_parallel": 1, "n_threads": 1, "n_seed": 42, "temperature": 0.5, "top_p": 0.9,
                       "presence_penalty": 0.25, "frequency_penalty": 0.5}, by=None)  # fmt: skip
    alias_create(data={**base, "alias": "tiny-plain", "n_ctx": 128}, by=None)
    alias_create(data={**base, "alias": "tiny:tl", "chat_template": "tinyllama"}, by=None)
    alias_create(data={**base, "alias": "far", "filename": "other.F32.gguf"}, by=None)
    return preset_file


@pytest.fixture
def router(llama_server_binary, shelf, tmp_path, settings) -> Iterator[Router]:
    port = free_port()
    log = tmp_path / "llama-server.log"
    # An empty cache of its own: the router lists every GGUF of the cache it sees besides the preset, and ours
    # are to be the preset's only.
    router_home = tmp_path / "router-hf-home"
    router_home.mkdir()
    env = {**os.environ, "HF_HOME": str(router_home), "LD_LIBRARY_PATH": str(llama_server_binary.parent)}
    env.pop("HF_HUB_CACHE", None)
    command = [str(llama_server_binary), "--models-preset", str(shelf), "--host", "127.0.0.1", "--port", str(port),
               "--no-models-autoload"]  # fmt: skip
    with open(log, "wb") as output:
        # A session of its own, so the router and the model processes it starts are stopped together, by its pid.
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Router(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        wait_for(lambda: process.poll() is None and server.models(), seconds=STARTUP_SECONDS, what="the router up")
        settings.MODELDESK_LLAMA_SERVER_URL = server.url
        yield server
    finally:
        stop_session(process, timeout=15)


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
