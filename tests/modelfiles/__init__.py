"""Helpers for the model-file page and API tests: rows made directly, and a real cache layout on disk."""

from __future__ import annotations

import hashlib
import itertools
import os
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from modelfiles.models import Download, ModelFile
from tests.gguf_files import tiny_gguf

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
_numbers = itertools.count(1)


def cache_file(
    hf_home: Path, repo: str, filename: str, *, commit: str = COMMIT, ref: str = "main", content: bytes | None = None
) -> Path:
    """Put a file into the cache the way huggingface_hub lays it out: blob, snapshot link, ref. The content is a
    tiny real GGUF unless given (generated aliases are made only for files whose header reads)."""
    if content is None:
        content = tiny_gguf()
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    etag = hashlib.sha256(content).hexdigest()
    blob = root / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    link = root / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    depth = len(Path(filename).parts) - 1
    os.symlink("/".join([".."] * (2 + depth) + ["blobs", etag]), link)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return link


def make_modelfile(**fields) -> ModelFile:
    number = next(_numbers)
    values = {
        "repo": "acme/Tiny-GGUF",
        "filename": f"tiny-{number:04d}.Q4_K_M.gguf",
        "snapshot": COMMIT,
        "refs": ["main"],
        "size": 1_500_000_000,
        "etag": hashlib.sha256(str(number).encode()).hexdigest(),
        "modified_at": timezone.now() - timedelta(hours=3),
    }
    values.update(fields)
    return ModelFile.objects.create(**values)


def make_download(**fields) -> Download:
    number = next(_numbers)
    values = {
        "repo": "acme/Tiny-GGUF",
        "filename": f"tiny-{number:04d}.Q4_K_M.gguf",
        "revision": "main",
        "status": Download.Status.QUEUED,
    }
    values.update(fields)
    return Download.objects.create(**values)
