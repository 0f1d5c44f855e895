from __future__ import annotations

from pathlib import Path

import pytest

from aliases.models import Alias
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_gguf
from tests.modelfiles import COMMIT, cache_file

REPO = "acme/Tiny-GGUF"
FILENAME = "tiny.Q4_K_M.gguf"
TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path) -> Path:
    """A Hugging Face cache of the test's own, and no preset file or router unless the test sets one."""
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_preset_file(settings):
    settings.MODELDESK_LLAMA_PRESET_PATH = ""
    settings.MODELDESK_LLAMA_SERVER_URL = ""


def snapshot_path(hf_home: Path, repo: str, filename: str, commit: str = COMMIT) -> Path:
    return hf_home / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots" / commit / filename


@pytest.fixture
def local_file(hf_home):
    """Put a tiny GGUF into the cache and scan it: `local_file(filename=..., repo=..., content=...)`."""

    def put(*, filename: str = FILENAME, repo: str = REPO, content: bytes | None = None) -> Path:
        link = cache_file(hf_home, repo, filename, content=content or tiny_gguf(chat_template=TEMPLATE))
        modelfile_sync()
        return link

    return put


def user_aliases() -> list[Alias]:
    return list(Alias.objects.filter(source=Alias.Source.USER))
