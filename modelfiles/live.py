"""The active downloads as the live pages poll them, from the cache (issue 12, item 2).

A hundred viewers polling every second asked the database for the same rows a hundred times a second. Every
write to Download rows through the ORM (a worker's progress, a state change, a button, the admin) marks them
changed, which gives them a new version in the cache; a poll reads the version, then the rows kept under it, and
asks the database only when none are kept yet, so the rows are read about once per change for everyone.

A version in the cache, rather than deleting the kept rows: a poll that read the rows just before a write and
stores them afterwards stores them with the old version, which no poll takes for the current one (it reads the
rows again). A write inside a
transaction marks the rows changed again when it commits (until then the new rows are not visible anyway).

What is written some other way (raw SQL) or marked changed in another process's own memory (the embedded setup,
where each process has its own cache and the worker's progress is not seen by the web server's) shows at most
SNAPSHOT_SECONDS later, within a poll interval: the kept rows run out by then.
"""

from __future__ import annotations

import logging
import secrets

from django.core.cache import caches
from django.db import transaction

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
VERSION_KEY = "downloads:active:version"
SNAPSHOT_KEY = "downloads:active:rows"
SNAPSHOT_SECONDS = 1


def _new_version() -> None:
    # No expiry: a version that ran out would be taken up again by whatever rows were kept under "none".
    try:
        caches[CACHE_ALIAS].set(VERSION_KEY, secrets.token_hex(8), None)
    except Exception:  # a cache that does not answer must not fail the write (a worker's progress, a pull)
        logger.warning("could not mark the downloads changed in the cache; polls see them within %s s",
                       SNAPSHOT_SECONDS, exc_info=True)  # fmt: skip


def downloads_changed() -> None:
    """Download rows were written: polls read them again. Called by the rows' manager and signals."""
    _new_version()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_new_version)


def downloads_version() -> str:
    """Changes whenever Download rows are written (through the ORM, in any process sharing the cache)."""
    return caches[CACHE_ALIAS].get(VERSION_KEY) or "none"


def download_active_shared() -> list:
    """`download_active()`, kept in the cache for everyone until the rows change (or SNAPSHOT_SECONDS pass)."""
    from modelfiles.selectors import download_active

    cache = caches[CACHE_ALIAS]
    # One round trip for both: the rows are kept with the version they were read under.
    found = cache.get_many([VERSION_KEY, SNAPSHOT_KEY])
    version = found.get(VERSION_KEY) or "none"
    kept = found.get(SNAPSHOT_KEY)
    if kept is not None and kept[0] == version:
        return kept[1]
    rows = download_active()
    cache.set(SNAPSHOT_KEY, (version, rows), SNAPSHOT_SECONDS)
    return rows
