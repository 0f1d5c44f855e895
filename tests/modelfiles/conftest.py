from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path) -> Path:
    """Every test gets an empty Hugging Face cache of its own; nothing reads or writes the real one."""
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home
