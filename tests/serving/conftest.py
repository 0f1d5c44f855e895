from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aliases.models import Alias
from aliases.services import alias_create
from config.serving.runtime import router_status_forget
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_gguf, tiny_llama_gguf
from tests.modelfiles import COMMIT, cache_file
from tests.modelfiles.conftest import hf_home  # noqa: F401  (autouse: a Hugging Face cache per test)
from tests.workers import free_port, stop_session

REPO = "acme/Tiny-GGUF"
FILENAME = "tiny.Q4_K_M.gguf"
TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"


@pytest.fixture(autouse=True)
def no_preset_file(settings):
    """No preset file or router unless the test sets one (each test also gets a cache of its own: hf_home)."""
    settings.MODELDESK_LLAMA_PRESET_PATH = ""
    settings.MODELDESK_LLAMA_SERVER_URL = ""
    router_status_forget()  # the router's answer is kept a few seconds per process: none from another test


def run_async(coroutine):
    """`asyncio.run` in a thread of its own: in the whole suite the browser journeys' Playwright (session-scoped,
    sync API) keeps an event loop running in the main thread, where asyncio.run refuses to start another."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def snapshot_path(home: Path, repo: str, filename: str, commit: str = COMMIT) -> Path:
    return home / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots" / commit / filename


@pytest.fixture
def local_file(hf_home):  # noqa: F811 (the fixture imported above)
    """Put a tiny GGUF into the cache and scan it: `local_file(filename=..., repo=..., content=...)`."""

    def put(*, filename: str = FILENAME, repo: str = REPO, content: bytes | None = None) -> Path:
        link = cache_file(hf_home, repo, filename, content=content or tiny_gguf(chat_template=TEMPLATE))
        modelfile_sync()
        return link

    return put


def user_aliases() -> list[Alias]:
    return list(Alias.objects.filter(source=Alias.Source.USER))


# --- the real llama-server ---------------------------------------------------------------------------------------
# Tests marked `llama_server` need the binary that `make llama-server` (python -m config.serving.llama_build) puts
# in its cache. Without it they are deselected and the summary says so; with CI=true they are kept and fail, so a
# CI machine cannot pass by leaving them out. MODELDESK_LLAMA_BUILD=1 lets the fixture build it (tens of minutes).
MISSING = pytest.StashKey[str]()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def llama_server_missing_reason() -> str | None:
    from config.serving import llama_build

    if llama_build.cached_binary() is not None or os.environ.get("MODELDESK_LLAMA_BUILD") == "1":
        return None
    return f"no llama-server in {llama_build.version_dir()}/bin (run `make llama-server`)"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("llama_server")]
    reason = llama_server_missing_reason() if marked else None
    if reason is None:
        return
    config.stash[MISSING] = reason
    if in_ci():
        return  # kept: the fixture fails each of them with the reason
    items[:] = [item for item in items if not item.get_closest_marker("llama_server")]
    config.hook.pytest_deselected(items=marked)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reason = config.stash.get(MISSING, None)
    if reason is None:
        return
    if in_ci():
        terminalreporter.write_line(
            f"llama-server tests FAILED: {reason} (CI=true: they must run)", red=True, bold=True
        )
    else:
        terminalreporter.write_line(f"llama-server tests NOT run: {reason}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    from config.serving import llama_build

    reason = llama_server_missing_reason()
    if reason is not None:
        pytest.fail(f"{reason} (CI=true: llama-server tests must run)", pytrace=False)
    return llama_build.llama_server(build_if_missing=True)


# --- a real router serving the preset ModelDesk writes (tests/serving/test_llama_server.py, test_runtime.py) ------
LLAMA_REPO = "acme/Tiny-Llama-GGUF"
LLAMA_FILENAME = "tiny.F32.gguf"
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
def shelf(hf_home, settings, tmp_path) -> Path:  # noqa: F811
    """The tiny model in the test cache, the preset path set, and three aliases on it (plus one not local)."""
    cache_file(hf_home, LLAMA_REPO, LLAMA_FILENAME, content=tiny_llama_gguf(chat_template=EMBEDDED))
    preset_file = tmp_path / "router" / "models.ini"
    settings.MODELDESK_LLAMA_PRESET_PATH = str(preset_file)
    modelfile_sync()
    base = {"repo": LLAMA_REPO, "filename": LLAMA_FILENAME, "snapshot": "main"}
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


# --- the site under uvicorn (the gateway's end-to-end tests) -------------------------------------------------------
@dataclass
class LiveSite:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def uvicorn_site(settings, tmp_path) -> Iterator[Callable[..., LiveSite]]:
    """`uvicorn_site()` starts the command `manage.py runall` runs (uvicorn serving config.asgi) on a free port,
    against the test database and with this test's serving settings; stopped at the end of the test. The test
    needs `django_db(transaction=True)`: the server reads what the test committed."""
    from config.accounts.management.commands.runall import uvicorn_command
    from tests.workers import BASE_DIR, test_database_url

    started: list[LiveSite] = []

    def start() -> LiveSite:
        port = free_port()
        log = tmp_path / f"uvicorn-{port}.log"
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": "gateway-test-secret-key-0123456789abcdef0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MODELDESK_LLAMA_SERVER_URL": settings.MODELDESK_LLAMA_SERVER_URL,
            "MODELDESK_LLAMA_PRESET_PATH": settings.MODELDESK_LLAMA_PRESET_PATH,
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "always",  # so a warning (a synchronous iterator, say) shows in the log
        }
        with open(log, "wb") as output:
            process = subprocess.Popen(uvicorn_command(sys.executable, f"127.0.0.1:{port}"), cwd=BASE_DIR, env=env,
                                       stdout=output, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        site = LiveSite(url=f"http://127.0.0.1:{port}", process=process, log=log)
        started.append(site)

        def up() -> bool:
            assert process.poll() is None, site.log_text()
            with contextlib.suppress(urllib.error.HTTPError):  # any HTTP answer: it is serving
                urllib.request.urlopen(f"{site.url}/login/", timeout=2)
            return True

        wait_for(up, seconds=STARTUP_SECONDS, what="uvicorn up")
        return site

    try:
        yield start
    finally:
        for site in started:
            stop_session(site.process, timeout=15)
