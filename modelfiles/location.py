"""Which cache this process sees: an identity kept inside the cache folder itself.

A host's files are those of the cache its process reads (`cache.hub_dir()`). Two workers on different machines
that mount one shared volume must be recognised as one place, and two workers on one machine with different
HF_HOMEs as two; neither the host name nor the path can tell that (the same volume is mounted under different
paths, and one machine holds several caches). So the first process to use a cache writes a small marker file into
it, `<hub>/.locks/modeldesk-location.json`, with a random key and the host that created it; everyone who reads the
same folder reads the same key. It lives in `.locks` because huggingface_hub's scan_cache_dir skips that folder (a
file beside the `models--*` folders would be reported as a corrupted repo), and our cleanup only looks at
`.locks/models--*` folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from modelfiles import cache

MARKER = "modeldesk-location.json"


@dataclass(frozen=True)
class CacheLocation:
    key: str  # the marker's key: the same for every process that reads this cache folder
    created_by: str  # the host that wrote the marker
    path: str  # the folder as this process sees it (another host may mount it elsewhere)


def current_host() -> str:
    """This process's host name (MODELDESK_HOST), read at call time so tests can change it."""
    return os.environ.get("MODELDESK_HOST") or settings.MODELDESK_HOST


def _read(marker: Path) -> dict | None:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("key"), str) and data["key"]:
        return data
    return None


def cache_location() -> CacheLocation:
    """The location of the cache this process reads, its marker written first if the cache has none yet.

    The marker is written whole under a temporary name and linked into place, which fails when another process
    got there first: every process ends up reading the one marker that won, never half of one. A cache that
    cannot be written to (read-only mount) gets a key derived from the host and the path, stable for that host.
    """
    hub = cache.hub_dir()
    folder = hub / ".locks"
    marker = folder / MARKER
    found = _read(marker)
    if found is None:
        host = current_host()
        payload = json.dumps({"key": uuid.uuid4().hex, "created_by": host}).encode()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary = folder / f".{MARKER}.{uuid.uuid4().hex}.tmp"
            temporary.write_bytes(payload)
            try:
                os.link(temporary, marker)
            except FileExistsError:
                pass  # another process wrote it first: theirs is the key
            except OSError:
                # No hard links on this file system: create-exclusive; a reader may see it empty for a moment,
                # and then reads it again below.
                with contextlib.suppress(FileExistsError):
                    descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    with os.fdopen(descriptor, "wb") as handle:
                        handle.write(payload)
            finally:
                temporary.unlink(missing_ok=True)
        except OSError:
            pass
        for _ in range(20):  # the create-exclusive fallback: the winner may still be writing its few bytes
            found = _read(marker)
            if found is not None or not marker.exists():
                break
            time.sleep(0.01)
        if found is None:
            found = {"key": uuid.uuid5(uuid.NAMESPACE_URL, f"{host}:{hub.resolve()}").hex, "created_by": host}
    return CacheLocation(key=found["key"], created_by=str(found.get("created_by") or ""), path=str(hub))


def host_queue(host: str) -> str:
    """The Celery queue of the tasks aimed at one host (pulls targeted at it)."""
    return f"host.{host}"


def location_queue(key: str) -> str:
    """The Celery queue of the tasks that must run where one cache is (verifying a file's bytes)."""
    return f"location.{key}"
