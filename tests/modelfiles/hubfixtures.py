"""Fixtures that put a real Hub-compatible server and a private HF cache under a test."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub.server import FakeHub
from tests.workers import set_hub_env

REPO = "acme/tiny-llama-GGUF"
FILE = "tiny-llama.Q4_K_M.gguf"


def pseudo_random(size: int, seed: int = 7) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def gguf_content(size: int, seed: int = 7) -> bytes:
    """`size` bytes that start as a real tiny GGUF (so the file can load and gets its generated alias); the rest
    is filler after the tensor data, which readers ignore."""
    from tests.gguf_files import tiny_gguf

    header = tiny_gguf()
    return header + pseudo_random(max(0, size - len(header)), seed)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hf_env(hub: FakeHub, tmp_path: Path, monkeypatch) -> dict[str, str]:
    """HF_HOME in tmp_path and HF_ENDPOINT at the test Hub, for this process and for workers it starts."""
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "MODELDESK_RETRY_BASE_SECONDS": "0.05",
        "MODELDESK_RETRY_CAP_SECONDS": "0.2",
    }
    set_hub_env(monkeypatch, env)
    from modelfiles import services

    monkeypatch.setattr(services, "RETRY_BASE_SECONDS", 0.05)
    monkeypatch.setattr(services, "RETRY_CAP_SECONDS", 0.2)
    return env


def hub_cache(env: dict[str, str]) -> Path:
    return Path(env["HF_HOME"]) / "hub"


def sha256_of(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def start_run(download) -> threading.Thread:
    """download_run on another thread, as a worker would, closing that thread's DB connection at the end."""

    def target():
        from django.db import connection

        from modelfiles import services

        try:
            services.download_run(download_id=download.pk, worker="thread")
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def wait_for(predicate, seconds: float = 15.0, step: float = 0.05):
    """The first true value of `predicate()`, polled; fails when none comes within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")
