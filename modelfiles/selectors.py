"""Read queries shared by the model-file and download pages and the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from aliases.models import Alias
from config.search import text_search
from modelfiles import cache
from modelfiles.models import CacheScan, Download, DownloadLimits, Location, ModelFile

MODELFILE_SEARCH_FIELDS = ("repo", "filename")
DOWNLOAD_SEARCH_FIELDS = ("repo", "filename")


def modelfile_search(queryset: QuerySet[ModelFile], text: str) -> QuerySet[ModelFile]:
    """Case-insensitive substring match across repo and filename."""
    return text_search(queryset, MODELFILE_SEARCH_FIELDS, text)


def modelfile_list(*, search: str = "", host: str = "") -> QuerySet[ModelFile]:
    """The files in the cache now (rows of files that have gone are kept, but not listed); `host` narrows to one
    worker host's cache (or one location, by its key)."""
    rows = ModelFile.objects.filter(present=True).select_related("location")
    if host:
        rows = rows.filter(location__in=location_pks(host=host))
    return modelfile_search(rows, search)


def location_pks(*, host: str) -> list[int]:
    """The locations a host name (or a location key) stands for: the cache its workers use, or the location whose
    first scanner it was. A few rows, compared here (a JSON "contains" lookup is not available on SQLite)."""
    return [
        pk
        for pk, key, name, hosts in Location.objects.values_list("pk", "key", "name", "hosts")
        if host == key or host in (hosts or ()) or (not hosts and host == name)
    ]


def modelfile_alias_names(files: Iterable[ModelFile]) -> dict[int, list[str]]:
    """{file pk: names of the aliases that load it}, in one query whatever the number of files.

    An alias loads a file when repo and filename match and its snapshot is the file's commit or one of the refs
    (`main`) that point at it. The query fetches every alias of the page's repos and filenames; the snapshot test,
    which depends on each file's refs, is done here.
    """
    files = list(files)
    if not files:
        return {}
    by_key: dict[tuple[str, str], list[ModelFile]] = {}
    for file in files:
        by_key.setdefault((file.repo, file.filename), []).append(file)
    names: dict[int, list[str]] = {file.pk: [] for file in files}
    candidates = (
        Alias.objects.filter(repo__in={repo for repo, _ in by_key}, filename__in={name for _, name in by_key})
        .order_by("alias", "pk")
        .values_list("alias", "repo", "filename", "snapshot")
    )
    for alias, repo, filename, snapshot in candidates:
        for file in by_key.get((repo, filename), ()):
            if snapshot == file.snapshot or snapshot in (file.refs or ()):
                names[file.pk].append(alias)
    return names


def download_search(queryset: QuerySet[Download], text: str) -> QuerySet[Download]:
    return text_search(queryset, DOWNLOAD_SEARCH_FIELDS, text)


def download_list(*, statuses: Sequence[str] = (), search: str = "") -> QuerySet[Download]:
    """Every download, newest first; `statuses` narrows to those states."""
    rows = Download.objects.select_related("requested_by")
    if statuses:
        rows = rows.filter(status__in=statuses)
    return download_search(rows, search)


def download_history(*, statuses: Sequence[str] = (), search: str = "") -> QuerySet[Download]:
    """The finished downloads (completed, failed, cancelled): the active ones are shown once, in their own list."""
    return download_list(statuses=statuses, search=search).exclude(status__in=Download.ACTIVE)


def download_active() -> list[Download]:
    """The active downloads: the running ones first (oldest first), then the queued and paused ones in the order
    they start in (Download.QUEUE_ORDER: priority, the operators' order, request time): one query.

    Each queued one gets `queue_place`, its place among the queued downloads counting from 1; a paused one gets
    the place it goes back to when resumed. Others get None. One order for all queues (the shared one and each
    host's): a worker takes the first queued download it can run, so a download aimed at a host only waits for
    those ahead of it that its host's workers could run."""
    rows = list(
        Download.objects.filter(status__in=Download.ACTIVE)
        .select_related("requested_by")
        .order_by(*Download.QUEUE_ORDER)
    )
    running = sorted((row for row in rows if row.status not in Download.WAITING), key=lambda row: row.created_at)
    waiting = [row for row in rows if row.status in Download.WAITING]
    ahead = 0
    for row in running:
        row.queue_place = None
    for row in waiting:
        row.queue_place = ahead + 1
        if row.status == Download.Status.QUEUED:
            ahead += 1
    return running + waiting


@dataclass(frozen=True)
class DownloadLimitsNow:
    """The limits as they stand, for the downloads page and the API. None: no limit."""

    max_concurrent: int | None  # MODELDESK_MAX_CONCURRENT_DOWNLOADS
    worker_concurrent: int | None  # MODELDESK_WORKER_CONCURRENT_DOWNLOADS (each worker reads its own)
    max_speed: int | None  # bytes/s shared by the running downloads
    max_speed_from_env: bool  # nobody changed it yet: MODELDESK_MAX_DOWNLOAD_SPEED
    updated_at: datetime | None
    updated_by: str | None


def download_global_speed() -> tuple[int | None, DownloadLimits | None]:
    """The global bandwidth limit in bytes/s (None: none) and the row it came from (None: the environment's)."""
    row = DownloadLimits.objects.select_related("updated_by").filter(pk=DownloadLimits.SINGLETON).first()
    if row is not None and row.changed:
        return row.max_speed, row
    return settings.MODELDESK_MAX_DOWNLOAD_SPEED or None, row


def download_limits_now() -> DownloadLimitsNow:
    """One query."""
    max_speed, row = download_global_speed()
    changed = row is not None and row.changed
    return DownloadLimitsNow(
        max_concurrent=settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS or None,
        worker_concurrent=settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS or None,
        max_speed=max_speed,
        max_speed_from_env=not changed,
        updated_at=row.updated_at if changed else None,
        updated_by=row.updated_by.get_username() if changed and row.updated_by else None,
    )


def download_counts() -> dict[str, int]:
    """{"running": downloading or verifying, "queued": waiting to start}: one query."""
    return Download.objects.aggregate(
        running=Count("pk", filter=Q(status__in=Download.RUNNING)),
        queued=Count("pk", filter=Q(status=Download.Status.QUEUED)),
    )


def download_get(*, download_id: str | uuid.UUID) -> Download | None:
    """One download by id; None when it does not exist or the id is not a uuid."""
    try:
        pk = download_id if isinstance(download_id, uuid.UUID) else uuid.UUID(str(download_id))
    except ValueError:
        return None
    return Download.objects.select_related("requested_by").filter(pk=pk).first()


def modelfile_storage() -> tuple[int, int]:
    """(files in the cache, bytes they take on disk), one query. Snapshots that share a blob share its bytes, so
    each (repo, blob) is counted once, as `du` would."""
    rows = list(ModelFile.objects.filter(present=True).values_list("repo", "etag", "size"))
    blobs = {(repo, etag): size for repo, etag, size in rows}
    return len(rows), sum(blobs.values())


def download_recent_failures(*, limit: int = 5) -> list[Download]:
    """The latest downloads that failed and were not retried since (a retry moves the row out of `failed`), nor
    asked for again: a newer download of the same file (completed, running or failed in its turn) replaces it."""
    newer = Download.objects.filter(
        repo=OuterRef("repo"),
        filename=OuterRef("filename"),
        host=OuterRef("host"),
        created_at__gt=OuterRef("created_at"),
    )
    return list(
        Download.objects.filter(status=Download.Status.FAILED)
        .exclude(Exists(newer))
        .select_related("requested_by")
        .order_by(F("finished_at").desc(nulls_last=True), "-created_at", "-pk")[:limit]
    )


def cache_scan_latest() -> CacheScan | None:
    """The latest cache scan's report (what it skipped and why), whichever process ran it."""
    return CacheScan.objects.order_by("-finished_at", "-pk").first()


def repo_files_local(*, repo: str, revision: str, paths: Iterable[str]) -> set[str]:
    """Which of a repo's files the cache holds for `revision` (the same test as a pull's "already local")."""
    return {path for path in paths if cache.local_file(repo, path, revision) is not None}


def download_active_for(*, repo: str, revision: str) -> dict[str, Download]:
    """{filename: active download} for one repo and revision: the file list marks what is on its way."""
    rows = Download.objects.filter(repo=repo, revision=revision, status__in=Download.ACTIVE).order_by(
        "created_at", "pk"
    )
    return {download.filename: download for download in rows}


def modelfile_state_reason(modelfile: ModelFile) -> str:
    """Why a file cannot load, in words; empty when it can."""
    if modelfile.state == ModelFile.State.INCOMPLETE:
        present, count = modelfile.split_present or 0, modelfile.split_count or 0
        if present < count:
            return f"Only {present} of the {count} parts of this split model are in this snapshot."
        return "A part of this split model is damaged or unreadable; see its parts."
    if modelfile.state == ModelFile.State.OK:
        return ""
    return modelfile.gguf_error or f"The file is {modelfile.state}."


def modelfile_split_parts(modelfile: ModelFile) -> list[ModelFile]:
    """The parts of the file's split set in its snapshot (itself included), in part order; [] when not split."""
    from modelfiles.gguf_header import split_name

    name = split_name(modelfile.filename)
    if name is None:
        return []
    names = [name.part(number) for number in range(1, name.count + 1)]
    rows = ModelFile.objects.filter(
        location=modelfile.location_id,  # files per host: the parts in the same cache
        repo=modelfile.repo,
        snapshot=modelfile.snapshot,
        filename__in=names,
        present=True,
    )
    return sorted(rows, key=lambda row: names.index(row.filename))


def location_hosts() -> list[str]:
    """Every worker host a pull can be aimed at, sorted."""
    return sorted({host for hosts in Location.objects.values_list("hosts", flat=True) for host in hosts or ()})


def location_of_host(host: str) -> Location | None:
    """The location whose cache a worker host uses, or None when no worker of that name has started."""
    return next((row for row in Location.objects.all() if host in (row.hosts or ())), None)
