from __future__ import annotations

import os
from pathlib import Path

import pytest

from aliases.models import Alias
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_gguf
from tests.modelfiles import COMMIT, cache_file
from tests.modelfiles.conftest import hf_home  # noqa: F401  (autouse: a Hugging Face cache per test)

REPO = "acme/Tiny-GGUF"
FILENAME = "tiny.Q4_K_M.gguf"
TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"


@pytest.fixture(autouse=True)
def no_preset_file(settings):
    """No preset file or router unless the test sets one (each test also gets a cache of its own: hf_home)."""
    settings.MODELDESK_LLAMA_PRESET_PATH = ""
    settings.MODELDESK_LLAMA_SERVER_URL = ""


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
