"""Every write to model files and downloads: pages, the API, commands and tasks call these functions."""

from __future__ import annotations

import fnmatch
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import BigIntegerField, Case, Count, F, PositiveIntegerField, Q, TextField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from aliases.models import Alias
from aliases.services import LocalModelFile, alias_sync_model_files, model_alias_name
from aliases.validators import segment_too_long, validate_filename, validate_repo, validate_snapshot
from config.audit.services import audit_record
from config.bulk import bulk_insert
from config.formatting import human_bytes, human_duration
from modelfiles import cache, cleanup, downloader, gguf_header, hub, location
from modelfiles.models import CacheScan, Download, DownloadLimits, Location, ModelFile, Verification
from modelfiles.selectors import download_global_speed, location_hosts, location_of_host

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = int(os.environ.get("MODELDESK_MAX_ATTEMPTS", "8"))
RETRY_BASE_SECONDS = float(os.environ.get("MODELDESK_RETRY_BASE_SECONDS", "1"))
RETRY_CAP_SECONDS = float(os.environ.get("MODELDESK_RETRY_CAP_SECONDS", "30"))
# A running download whose heartbeat is older than this is taken to have lost its worker.
STALE_SECONDS = float(os.environ.get("MODELDESK_STALE_SECONDS", "60"))
# A queued download whose task the broker took this long ago and no worker has started is sent again (the broker
# may have lost it, e.g. a Redis restarted without persistence). Long enough that a normal wait in a busy queue
# costs at most one duplicate message per period; duplicates are harmless (the claim makes them no-ops).
RECONCILE_GRACE_SECONDS = float(os.environ.get("MODELDESK_RECONCILE_GRACE_SECONDS", "300"))


class AlreadyLocal(Exception):
    def __init__(self, path: Path, modelfile: ModelFile | None, *, parts: int = 1):
        self.path = path
        self.modelfile = modelfile
        self.parts = parts
        what = "This file is" if parts == 1 else f"Every part ({parts}) of this split model is"
        super().__init__(f"{what} already in the local cache for that revision; nothing to download.")


def pull_parts(filename: str) -> list[str]:
    """The files a pull of `filename` brings: itself, or every part of its split set (part 1 first).

    llama.cpp opens part 1 and needs all the others next to it, so a part alone is never worth fetching."""
    name = gguf_header.split_name(filename)
    return [name.part(number) for number in range(1, name.count + 1)] if name else [filename]


def pull_set_note(*, parts: int, size: int | None) -> str:
    """ " (3 parts, 12.3 GB)" for a split set, to follow its name wherever a pull is shown; "" for one file."""
    if parts <= 1:
        return ""
    if size is None:
        return f" ({parts} parts)"
    return f" ({parts} parts, {human_bytes(size)})"


def pull_label(*, filename: str, parts: int, size: int | None) -> str:
    """How a pull is named to people: the file, or a split set as "x-00001-of-00003.gguf (3 parts, 12.3 GB)"."""
    return filename + pull_set_note(parts=parts, size=size)


def _user(by: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return by if by is not None and by.is_authenticated else None


def _audit_download(*, download: Download, action: str, by: AbstractBaseUser | None, status: str) -> None:
    """Audit a request, cancel or retry: the state the caller read and the state this change leaves."""
    before = None if action == "request" else {"status": download.status}
    after = {"status": status}
    if action == "request":
        after = {"repo": download.repo, "filename": download.filename, "revision": download.revision, **after}
    name = f"{download.repo}/{download.filename}@{download.revision}"
    audit_record(
        actor=by, kind="download", action=action, object_id=download.pk, object_repr=name, before=before, after=after
    )


# How many added/removed files one scan entry names; the counts always say how many there were in all.
AUDIT_SCAN_FILES = 100


def _audit_scan(
    *, repo: str | None, found: dict, existing: dict, gone: list, updated: int, by: AbstractBaseUser | None
) -> None:
    """One audit entry for a scan that changed something (new, changed or vanished files): by whoever pressed
    Rescan, or the system for the periodic scans and the one after each pull."""
    gone_pks = set(gone)
    added = [key for key in found if key not in existing]
    removed = [key for key, row in existing.items() if row.pk in gone_pks]
    if not (added or removed or updated):
        return

    def names(keys: list) -> list[str]:
        return [f"{key_repo}/{filename}@{snapshot}" for key_repo, filename, snapshot in sorted(keys)[:AUDIT_SCAN_FILES]]

    counts = {"created": len(added), "updated": updated, "removed": len(removed), "present": len(found)}
    audit_record(
        actor=by,
        kind="modelfile",
        action="scan",
        object_id=repo or "",
        object_repr=repo or "all repos",
        after={**counts, "files_added": names(added), "files_removed": names(removed)},
    )


def pull_validate(*, repo: str, filename: str, revision: str) -> None:
    """The repo, file and revision of a pull, each checked whole (no control characters anywhere, no name the
    file system cannot hold), so nothing odd ever reaches the Hub URL, the cache path or the database."""
    errors: dict[str, list[str]] = {}
    for field, value, validator in (
        ("repo", repo, validate_repo),
        ("filename", filename, validate_filename),
        ("revision", revision, validate_snapshot),
    ):
        try:
            validator(value)
        except ValidationError as exc:
            errors[field] = exc.messages
    if len(filename) > 255:
        errors.setdefault("filename", []).append("At most 255 characters.")
    # The cache folder is named after the repo (models--owner--name) and refs/<revision> after the revision.
    for field, name in (("repo", "models--" + repo.replace("/", "--")), ("revision", revision)):
        too_long = segment_too_long(name) if field not in errors else None
        if too_long:
            errors.setdefault(field, []).append(too_long)
    if errors:
        raise ValidationError(errors)


def download_publish(*, download_id: uuid.UUID | str, host: str = "", hops: int = 0) -> bool:
    """Hand a queued download's task to the broker and note when; False (logged) when the broker is unreachable.
    `hops`: how many full workers passed this message on already (see `download_run_next`).

    Never raises: the row is already committed and stays queued, and `download_reconcile` sends it later. The
    broker settings bound how long this may take (CELERY_TASK_PUBLISH_RETRY_POLICY and the broker timeouts).
    """
    from modelfiles.tasks import download_task

    # Files per host: a pull aimed at a host (the row's `host`) goes to that host's own queue, the others to the
    # shared one.
    try:
        passed_on = {"kwargs": {"hops": hops}} if hops else {}
        if host:
            download_task.apply_async((str(download_id),), queue=location.host_queue(host), **passed_on)
        elif hops:
            download_task.apply_async((str(download_id),), **passed_on)
        else:
            download_task.delay(str(download_id))
    except Exception as exc:  # kombu OperationalError, redis-py errors, OSError from the on-disk broker...
        logger.warning(
            "download %s: the task queue is unreachable (%s); it stays queued and is sent later", download_id, exc
        )
        return False
    # Only while still queued: a worker may already have claimed it, and then the time no longer matters.
    Download.objects.filter(pk=download_id, status=Download.Status.QUEUED).update(enqueued_at=timezone.now())
    return True


def _enqueue(download_id: uuid.UUID, host: str) -> None:
    # robust: a failing callback must not turn the request into a 500 after the row was committed.
    transaction.on_commit(lambda: download_publish(download_id=download_id, host=host), robust=True)


def _active(repo: str, filename: str, revision: str, host: str = "") -> Download | None:
    return Download.objects.filter(
        repo=repo, filename=filename, revision=revision, host=host, status__in=Download.ACTIVE
    ).first()


def download_request(
    *,
    repo: str,
    filename: str,
    revision: str = "main",
    by: AbstractBaseUser | None,
    host: str = "",
    priority: int = Download.Priority.NORMAL,
    max_speed: int | None = None,
) -> tuple[Download, bool]:
    """Queue a pull, or return the active one for the same file: (download, created).

    `priority` (Download.Priority) places it in the queue: after the queued downloads of its priority or higher,
    before those of lower priority. `max_speed` is its own bandwidth limit in bytes/s (None: only the global one).
    An active download returned as it is keeps its own priority and limit.

    Raises ValidationError for a bad repo/filename/revision, PullRefused (a ValidationError) for a repo outside
    the allow-list or what the pre-flight found (see `pull_preflight`), and AlreadyLocal when the cache already
    holds the file for that revision. A new row queued without the Hub's word carries the note HUB_UNCHECKED.

    A part of a split model (`x-00002-of-00003.gguf`) asks for the whole set: one row named by part 1 with
    `parts` and the set's size; AlreadyLocal only when every part is in the cache.
    """
    pull_validate(repo=repo, filename=filename, revision=revision)
    _queue_values_check(priority=priority, max_speed=max_speed)
    pull_source_check(repo=repo)
    # Any part of a split set is a request for the whole set, named by its part 1: the one-active constraint
    # then answers a second request for another part with the same row.
    parts = pull_parts(filename)
    filename = parts[0]
    # Files per host: a pull aimed at another host's cache is checked against that host's rows, not this disk.
    target = pull_target(host=host)
    if target is not None and target.key != location.cache_location().key:
        held = [_held_at(target, repo=repo, filename=part, revision=revision) for part in parts]
        if all(row is not None for row in held):
            path = Path(target.path) / cache.repo_folder_name(repo) / "snapshots" / held[0].snapshot / filename
            raise AlreadyLocal(path, held[0], parts=len(parts))
    else:
        paths = [cache.local_file(repo, part, revision) for part in parts]
        if all(path is not None for path in paths):
            commit = cache.resolve_revision(repo, revision)
            rows = ModelFile.objects.filter(repo=repo, filename=filename, snapshot=commit)
            modelfile = rows.filter(location__key=location.cache_location().key).first() or rows.first()
            raise AlreadyLocal(paths[0], modelfile, parts=len(parts))
    # An active download of the same file is the answer as it is: no need to ask the Hub again.
    existing = _active(repo, filename, revision, host)
    if existing is not None:
        return existing, False
    note, total = _pull_preflight(repo=repo, parts=parts, revision=revision)
    unchecked = {"error_code": HUB_UNCHECKED, "error_message": note} if note else {}
    if len(parts) > 1:
        # The set's size is known from the pre-flight: pages show "3 parts, 12.3 GB" while it waits.
        unchecked.update(parts=len(parts), bytes_total=total)
    for _ in range(3):
        existing = _active(repo, filename, revision, host)
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                download = Download.objects.create(
                    repo=repo, filename=filename, revision=revision, host=host, requested_by=_user(by),
                    priority=priority, max_speed=max_speed, **unchecked,
                )  # fmt: skip
                _audit_download(download=download, action="request", by=by, status=download.status)
                _enqueue(download.pk, download.host)
            # The task was handed over on commit (or not, if the broker is down): say which.
            download.refresh_from_db(fields=["status", "enqueued_at"])
            return download, True
        except IntegrityError:
            # Another request for the same file won the one-active-download constraint; return its row.
            continue
    raise RuntimeError("Could not queue the download; try again.")


def download_cancel(*, download: Download, by: AbstractBaseUser | None) -> bool:
    """Cancel an active (or paused) download: its worker stops within about a second and the partial file is
    deleted, so a retry starts from the first byte. False when it was not active.

    The partial file goes here when no transfer holds it; a worker still writing it deletes it as it stops."""
    who = by.get_username() if by is not None and by.is_authenticated else "the system"
    with transaction.atomic():
        changed = Download.objects.filter(pk=download.pk, status__in=Download.ACTIVE).update(
            status=Download.Status.CANCELLED,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
            speed=None,
            eta=None,
            claim=None,
            retry_at=None,
            error_code="cancelled",
            error_message=f"Cancelled by {who}; the partial file was deleted.",
        )
        if changed:
            _audit_download(download=download, action="cancel", by=by, status=Download.Status.CANCELLED)
    if changed:
        download_discard_partial(download_id=download.pk)
        download_event_send(download_id=download.pk)
    return changed == 1


def download_event(download: Download) -> dict:
    """The webhook's JSON for a finished download: `event` is download.completed, download.failed or
    download.cancelled; `download` holds what a receiver needs to act on it (the API's detail URL for more)."""
    return {
        "event": f"download.{download.status}",
        "download": {
            "id": str(download.pk),
            "repo": download.repo,
            "filename": download.filename,
            "revision": download.revision,
            "commit": download.commit or None,
            "status": download.status,
            "parts": download.parts,
            "host": download.host or None,
            "bytes_total": download.bytes_total,
            "bytes_done": download.bytes_done,
            "verified": download.verified or None,
            "attempts": download.attempts,
            "error": {"code": download.error_code, "message": download.error_message} if download.error_code else None,
            "requested_by": download.requested_by.get_username() if download.requested_by else None,
            "created_at": download.created_at.isoformat(),
            "finished_at": download.finished_at.isoformat() if download.finished_at else None,
            "url": f"/api/modelfiles/status/{download.pk}",
        },
    }


def download_event_send(*, download_id: uuid.UUID | str) -> None:
    """Hand the event of a download that just finished to a worker, which POSTs it to MODELDESK_WEBHOOK_URL
    (retrying while the receiver is down). Nothing when no URL is set; never raises (the download's end is
    recorded whatever the webhook does). The event is read now, so it says how the download ended even if
    it is retried before the task runs."""
    if not settings.MODELDESK_WEBHOOK_URL:
        return

    def publish() -> None:
        from modelfiles.tasks import webhook_task

        download = Download.objects.select_related("requested_by").filter(pk=download_id).first()
        if download is None or download.is_active:
            return
        try:
            webhook_task.delay(download_event(download))
        except Exception as exc:  # the broker is down: this event is lost, the download's row says the same
            logger.warning("download %s: the webhook event could not be queued (%s)", download_id, exc)

    transaction.on_commit(publish, robust=True)


def _partial_here(host: str) -> bool:
    """Whether a download aimed at `host` keeps its partial file in this process's cache (files per host)."""
    if not host:
        return True
    target = location_of_host(host)
    return target is None or target.key == location.cache_location().key


def download_discard_partial(*, download_id: uuid.UUID | str) -> bool:
    """Delete a download's partial file, when it is in this process's cache and no transfer holds it (a transfer
    that stops for a cancel deletes its own). True when nothing of it is left here."""
    row = Download.objects.filter(pk=download_id).values("repo", "etag", "host").first()
    if row is None or not row["etag"]:
        return True  # gone, or no byte was ever fetched (the etag is known before the first one)
    if not _partial_here(row["host"]):
        return False  # that host's worker (or its cleanup) deletes it
    return downloader.discard_partial(row["repo"], row["etag"])


def download_kept_bytes(*, download: Download) -> int:
    """The bytes of the download's partial file in this process's cache: what a retry or a resume continues
    from. 0 when there is none here (nothing fetched, deleted by a cancel or a failed check, another host's)."""
    if not download.etag or not _partial_here(download.host):
        return 0
    return downloader.partial_bytes(download.repo, download.etag)


@transaction.atomic
def download_pause(*, download: Download, by: AbstractBaseUser | None) -> bool:
    """Pause a queued or downloading download: its worker stops within about a second and lets go of it; the
    partial file stays and `download_resume` continues from it. False when it was not queued or downloading."""
    changed = Download.objects.filter(pk=download.pk, status__in=Download.PAUSABLE).update(
        status=Download.Status.PAUSED,
        claim=None,
        speed=None,
        eta=None,
        retry_at=None,
        updated_at=timezone.now(),
        # A try stopped by a pause did not fail, so it is not counted; one that failed and waits to retry is.
        attempts=Case(
            When(status=Download.Status.DOWNLOADING, retry_at__isnull=True, attempts__gt=0, then=F("attempts") - 1),
            default=F("attempts"),
            output_field=PositiveIntegerField(),
        ),
        error_code="",
        error_message="",
    )
    if changed:
        _audit_download(download=download, action="pause", by=by, status=Download.Status.PAUSED)
    return changed == 1


@transaction.atomic
def download_resume(*, download: Download, by: AbstractBaseUser | None) -> bool:
    """Queue a paused download again. It keeps its place (its priority and position, see Download.QUEUE_ORDER and
    `download_run_next`) and continues its partial file with a Range request. False when it was not paused."""
    changed = Download.objects.filter(pk=download.pk, status=Download.Status.PAUSED).update(
        status=Download.Status.QUEUED, updated_at=timezone.now(), enqueued_at=None, notice_pending=False
    )
    if changed:
        _audit_download(download=download, action="resume", by=by, status=Download.Status.QUEUED)
        _enqueue(download.pk, download.host)
    return changed == 1


def download_retry(*, download: Download, by: AbstractBaseUser | None) -> tuple[Download, bool]:
    """Re-queue a failed or cancelled download: (download, requeued). A failed one resumes its partial file; a
    cancelled one starts over (its partial file was deleted). Its tries are counted afresh.

    Raises PullRefused when the source rules (changed since, perhaps) no longer allow it."""
    if download.status in Download.RETRYABLE:
        pull_source_check(repo=download.repo, filename=download.filename, size=download.bytes_total)
    try:
        with transaction.atomic():
            changed = Download.objects.filter(pk=download.pk, status__in=Download.RETRYABLE).update(
                status=Download.Status.QUEUED,
                finished_at=None,
                updated_at=timezone.now(),
                error_code="",
                error_message="",
                speed=None,
                eta=None,
                claim=None,
                enqueued_at=None,
                attempts=0,
                retry_at=None,
                notice_pending=False,
                # Asked for again: after the downloads queued meanwhile, as a new request would be.
                position=None,
                # Nothing of a cancelled download is kept: it must not show the bytes it had before.
                bytes_done=Case(
                    When(status=Download.Status.CANCELLED, then=Value(0)),
                    default=F("bytes_done"),
                    output_field=BigIntegerField(),
                ),
            )
            if changed:
                _audit_download(download=download, action="retry", by=by, status=Download.Status.QUEUED)
                _enqueue(download.pk, download.host)
    except IntegrityError:
        # A newer request for the same file is already active: that one is the download to watch.
        active = _active(download.repo, download.filename, download.revision, download.host)
        if active is not None:
            return active, False
        raise
    download.refresh_from_db()
    return download, bool(changed)


# --- queue order and limits (issue 11, item 3) -----------------------------------------------------------------------

# A bandwidth limit below this would look like a stalled transfer; above the other, it is no limit at all.
MIN_SPEED_LIMIT = 10_000
MAX_SPEED_LIMIT = 10**12
MOVES = ("top", "up", "down")


def _speed_problem(max_speed: int | None) -> str | None:
    if max_speed is None:
        return None
    if isinstance(max_speed, bool) or not isinstance(max_speed, int):
        return "A whole number of bytes per second, or empty for no limit."
    if max_speed < MIN_SPEED_LIMIT:
        return (
            f"At least {MIN_SPEED_LIMIT:,} bytes per second ({human_bytes(MIN_SPEED_LIMIT)}/s), or empty for no limit."
        )
    if max_speed > MAX_SPEED_LIMIT:
        return f"At most {MAX_SPEED_LIMIT:,} bytes per second, or empty for no limit."
    return None


def _queue_values_check(*, priority: int, max_speed: int | None) -> None:
    errors: dict[str, list[str]] = {}
    if priority not in Download.Priority.values:
        errors["priority"] = [f"One of: {', '.join(Download.Priority.labels)}."]
    if problem := _speed_problem(max_speed):
        errors["max_speed"] = [problem]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def download_move(*, download: Download, to: str, by: AbstractBaseUser | None) -> bool:
    """Move a queued or paused download in the queue: to the `top`, one place `up` or `down` (past one queued
    download; paused ones keep their places around it). False when it is not queued or paused.

    The queue goes by priority first: a download moved past one of another priority takes that priority, so it
    stands where the operator put it (moved to the top of a queue headed by a high-priority download, it becomes
    high). The waiting downloads are renumbered 1, 2, ... in the new order; downloads asked for later come after
    them within their priority. Already first (or last) is no change, and True."""
    if to not in MOVES:
        raise ValidationError({"to": [f"One of: {', '.join(MOVES)}."]})
    _limits_locked()  # one reordering at a time, and none while a worker picks the next download
    rows = list(
        Download.objects.filter(status__in=Download.WAITING)
        .order_by(*Download.QUEUE_ORDER)
        .only("pk", "status", "priority", "position")
    )
    index = next((number for number, row in enumerate(rows) if row.pk == download.pk), None)
    if index is None:
        return False
    moved = rows.pop(index)
    queued = [number for number, row in enumerate(rows) if row.status == Download.Status.QUEUED]
    before = [number for number in queued if number < index]
    after = [number for number in queued if number >= index]
    if to == "top":
        target = queued[0] if queued and queued[0] < index else index
    elif to == "up":
        target = before[-1] if before else index
    else:
        target = after[0] + 1 if after else index
    rows.insert(target, moved)
    old = {"priority": Download.Priority(moved.priority).label, "position": moved.position}
    priority = moved.priority
    if target + 1 < len(rows):
        priority = max(priority, rows[target + 1].priority)
    if target > 0:
        priority = min(priority, rows[target - 1].priority)
    changed = {moved.pk: moved} if priority != moved.priority else {}
    moved.priority = priority
    for number, row in enumerate(rows, 1):
        if row.position != number:
            row.position = number
            changed[row.pk] = row
    if changed:
        Download.objects.bulk_update(list(changed.values()), ["priority", "position"])
    audit_record(
        actor=by, kind="download", action="move", object_id=download.pk,
        object_repr=f"{download.repo}/{download.filename}@{download.revision}",
        before=old, after={"to": to, "priority": Download.Priority(priority).label, "position": moved.position},
    )  # fmt: skip
    return True


@transaction.atomic
def download_speed_set(*, download: Download, max_speed: int | None, by: AbstractBaseUser | None) -> bool:
    """Set an active download's own bandwidth limit (bytes/s; None: only the global one). A running transfer
    follows it within about a second (it asks `download_speed_limit`). False when the download is not active."""
    if problem := _speed_problem(max_speed):
        raise ValidationError({"max_speed": [problem]})
    before = Download.objects.filter(pk=download.pk).values_list("max_speed", flat=True).first()
    changed = Download.objects.filter(pk=download.pk, status__in=Download.ACTIVE).update(max_speed=max_speed)
    if changed:
        audit_record(
            actor=by, kind="download", action="speed", object_id=download.pk,
            object_repr=f"{download.repo}/{download.filename}@{download.revision}",
            before={"max_speed": before}, after={"max_speed": max_speed},
        )  # fmt: skip
    return changed == 1


@transaction.atomic
def download_limits_set(*, max_speed: int | None, by: AbstractBaseUser | None) -> DownloadLimits:
    """Set the global bandwidth limit (bytes/s shared by the running downloads; None: none). Running transfers
    follow it within about a second. From then on it holds instead of MODELDESK_MAX_DOWNLOAD_SPEED."""
    if problem := _speed_problem(max_speed):
        raise ValidationError({"max_speed": [problem]})
    before, _ = download_global_speed()
    row = _limits_locked()
    row.max_speed = max_speed
    row.changed = True
    row.updated_by = _user(by)
    row.save()
    audit_record(
        actor=by, kind="download", action="limits", object_id="global", object_repr="download limits",
        before={"max_speed": before}, after={"max_speed": max_speed},
    )  # fmt: skip
    return row


def _fair_share(total: float, caps: list[float]) -> float:
    """Max-min fair share of `total` among downloads whose own limits are `caps` (inf: none): what each
    download without a lower limit of its own may use. Downloads capped below the share leave the rest to others."""
    left = total
    for done, cap in enumerate(sorted(caps)):
        share = left / (len(caps) - done)
        if cap >= share:
            return share
        left -= cap
    return float("inf")  # every one is held by its own limit below its share


def download_speed_limit(download_id: uuid.UUID | str) -> float | None:
    """The bytes per second this download may use right now; None: no limit. What the transfer asks about once a
    second, so a limit changed on the page applies while it runs. Two queries.

    It is the lower of its own limit (`max_speed`) and its share of the global one: the global limit divided
    among the downloads transferring now (status downloading, not waiting to retry; this one counted whatever its
    state), fairly: a download held below its share by its own limit leaves the rest to the others. A download
    that does not exist gets None."""
    try:
        pk = download_id if isinstance(download_id, uuid.UUID) else uuid.UUID(str(download_id))
    except ValueError:
        return None
    rows = Download.objects.filter(Q(pk=pk) | Q(status=Download.Status.DOWNLOADING, retry_at__isnull=True)).values_list(
        "pk", "max_speed"
    )
    caps = {row_pk: float(cap) if cap else float("inf") for row_pk, cap in rows}
    if pk not in caps:
        return None
    own = caps[pk]
    total, _ = download_global_speed()
    limit = own if not total else min(own, _fair_share(float(total), list(caps.values())))
    return None if limit == float("inf") else limit


def download_notices_take(*, user: AbstractBaseUser) -> list[Download]:
    """The downloads `user` asked for that completed or failed since they were last told, oldest first; they are
    marked told. At most 20 (a long absence is summed up by the downloads page, not by a wall of messages)."""
    # Asked on every page a signed-in person opens, and nearly always answered "none": the keys alone first (a
    # query of one column is a fraction of the whole row's to build), the rows only when there are some.
    pending = Download.objects.filter(requested_by=user, notice_pending=True).order_by("finished_at", "pk")
    keys = list(pending.values_list("pk", flat=True)[:20])
    if not keys:
        return []
    rows = list(Download.objects.filter(pk__in=keys).order_by("finished_at", "pk"))
    Download.objects.filter(pk__in=keys).update(notice_pending=False)
    return rows


def download_requeue_stale(
    *,
    older_than: float = STALE_SECONDS,
    worker: str | None = None,
    download_id: uuid.UUID | str | None = None,
    note: str = "The worker stopped answering; queued again to resume.",
    send: bool = True,
) -> int:
    """Re-queue running downloads whose worker died: heartbeat older than `older_than` s, or owned by `worker`
    (a worker that is starting again under the same name cannot still be running its old downloads).

    Covers every runner, `manage.py pull` included: its heartbeat is the same. `download_id` limits it to one
    row (the pull command taking over a download whose runner stopped)."""
    rows = Download.objects.filter(status__in=Download.RUNNING)
    if download_id is not None:
        rows = rows.filter(pk=download_id)
    if worker is not None:
        rows = rows.filter(worker=worker)
    else:
        rows = rows.filter(updated_at__lt=timezone.now() - timedelta(seconds=older_than))
    requeued = 0
    for stale_id, host in list(rows.values_list("pk", "host")):
        with transaction.atomic():
            changed = Download.objects.filter(pk=stale_id, status__in=Download.RUNNING).update(
                status=Download.Status.QUEUED,
                claim=None,
                speed=None,
                eta=None,
                retry_at=None,
                enqueued_at=None,
                updated_at=timezone.now(),
                error_message=note,
            )
            if changed and send:
                _enqueue(stale_id, host)  # a pull aimed at a host resumes there: its partial file is on that disk
                requeued += changed
    if requeued:
        logger.warning("re-queued %s download(s) whose worker stopped", requeued)
    return requeued


def download_reconcile(*, grace: float = RECONCILE_GRACE_SECONDS) -> int:
    """Send again the queued downloads that no worker may know of; returns how many were sent.

    Those are the rows whose task never reached the broker (it was down when they were queued, or when a retry or
    a stale-heartbeat job re-queued them), and those handed over more than `grace` seconds ago that are still
    queued (the broker may have lost the message). Each row is sent at most once per `grace`, so a long queue is
    not flooded; a duplicate that does arrive finds the row claimed and does nothing.
    """
    cutoff = timezone.now() - timedelta(seconds=grace)
    rows = Download.objects.filter(status=Download.Status.QUEUED).filter(
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff)
    )
    sent = 0
    for download_id, previous, host in list(rows.order_by("created_at", "pk").values_list("pk", "enqueued_at", "host")):
        # Take the row for this run first (a conditional UPDATE): the beat and workers starting at the same
        # moment reconcile together, and only one of them sends it.
        mine = Download.objects.filter(pk=download_id, status=Download.Status.QUEUED)
        mine = mine.filter(enqueued_at__isnull=True) if previous is None else mine.filter(enqueued_at=previous)
        taken_at = timezone.now()
        if not mine.update(enqueued_at=taken_at):
            continue
        if not download_publish(download_id=download_id, host=host):
            # Give it back as it was (the note shows again), unless something else changed it meanwhile.
            Download.objects.filter(pk=download_id, enqueued_at=taken_at).update(enqueued_at=previous)
            break  # still unreachable: the next run tries again, no need to wait for a timeout per row
        sent += 1
    if sent:
        logger.warning("sent %s queued download(s) again that no worker had been told of", sent)
    return sent


def download_hand_back(*, worker: str) -> int:
    """A worker that is stopping gives back the downloads it runs: queued again, claim released, a note in the row.
    The transfer notices the lost claim at its next progress report (within a second or so), keeps its partial file
    and returns, so the worker exits promptly; the next one resumes with a Range.

    The tasks are not sent from here: the stopping worker's own consumer could still take one into an idle
    process. The rows are queued with no task handed over, which the next worker's start and the beat's reconcile
    (every 30 s) send."""
    return download_requeue_stale(
        worker=worker,
        note=f"Handed back by worker {worker} as it stopped; the next worker resumes from the bytes already fetched.",
        send=False,
    )


@dataclass
class _Claim:
    download_id: uuid.UUID
    token: uuid.UUID

    def rows(self):
        return Download.objects.filter(pk=self.download_id, claim=self.token, status__in=Download.RUNNING)

    def update(self, **fields) -> bool:
        return self.rows().update(updated_at=timezone.now(), **fields) == 1

    def finish(self, status: str, **fields) -> bool:
        # Whoever asked is told on their next page (modelfiles.middleware); the webhook hears of it too.
        done = self.update(status=status, finished_at=timezone.now(), speed=None, eta=None, retry_at=None,
                           notice_pending=True, **fields)  # fmt: skip
        if done:
            download_event_send(download_id=self.download_id)
        return done


def _backoff(attempt: int) -> float:
    # Full jitter: many workers retrying one Hub do not come back in step.
    return random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))


def _wait(claim: _Claim, seconds: float) -> bool:
    """Sleep between attempts, keeping the heartbeat and noticing a cancel; False when we lost the download."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        if not claim.update():
            return False
    return True


def _limits_locked() -> DownloadLimits:
    """The download limits' row, locked until the transaction ends (created if missing: tests flush tables).

    Starting a download and reordering the queue take it, so two workers never both take the last free slot
    (PostgreSQL: a row lock; SQLite: the IMMEDIATE transaction holds the database's write lock already)."""
    row, _ = DownloadLimits.objects.select_for_update().get_or_create(pk=DownloadLimits.SINGLETON)
    return row


def _claim(download_id: uuid.UUID | str, worker: str) -> uuid.UUID | None:
    """Take a queued download for this runner (a conditional UPDATE): its claim token, or None when it is not
    queued any more (claimed by another, paused, cancelled, gone)."""
    token = uuid.uuid4()
    claimed = Download.objects.filter(pk=download_id, status=Download.Status.QUEUED).update(
        status=Download.Status.DOWNLOADING,
        claim=token,
        worker=worker[:255],
        started_at=Coalesce(F("started_at"), timezone.now()),
        updated_at=timezone.now(),
        attempts=F("attempts") + 1,
        retry_at=None,
        error_code="",
        # The pre-flight's "queued unchecked" note ends here: the worker asks the Hub now.
        error_message=Case(
            When(error_code=HUB_UNCHECKED, then=Value("")), default=F("error_message"), output_field=TextField()
        ),
        verified="",
    )
    return token if claimed else None


# Why a worker found nothing to start: the queue it can take from is empty, or a limit is reached.
NOTHING_QUEUED, GLOBAL_LIMIT, WORKER_LIMIT = "nothing queued", "global limit", "worker limit"


def _claim_next(*, hosts: Iterable[str], worker: str) -> tuple[uuid.UUID | None, uuid.UUID | None, str]:
    """Take the first queued download (Download.QUEUE_ORDER) of `hosts` if the limits leave a slot:
    (id, claim token, "") or (None, None, why not). Counting the running downloads and claiming are one
    transaction under the limits' lock, so the limits hold with any number of workers."""
    most = settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS
    per_worker = settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS
    with transaction.atomic():
        _limits_locked()
        if most > 0 or per_worker > 0:
            running = Download.objects.filter(status__in=Download.RUNNING).aggregate(
                total=Count("pk"), mine=Count("pk", filter=Q(worker=worker[:255]))
            )
            if most > 0 and running["total"] >= most:
                return None, None, GLOBAL_LIMIT
            if per_worker > 0 and running["mine"] >= per_worker:
                return None, None, WORKER_LIMIT
        queued = Download.objects.filter(status=Download.Status.QUEUED, host__in=list(hosts))
        while True:
            first = queued.order_by(*Download.QUEUE_ORDER).values_list("pk", flat=True).first()
            if first is None:
                return None, None, NOTHING_QUEUED
            token = _claim(first, worker)
            if token is not None:
                return first, token, ""
            # Paused, cancelled or run by `manage.py pull` between the read and the claim: the next one, then.


def download_run_next(
    *, download_id: str | uuid.UUID, worker: str = "", hops: int = 0, stopping: Callable[[], bool] | None = None
) -> Download | None:
    """What a task runs: the first queued download (priority, then the operators' order, then request time) this
    worker can run, when the concurrency limits leave a slot; then the next, and so on, until none is left or a
    limit is reached. Returns the last one it ran.

    A message stands for "one queued download to run", not for its own row: every move into `queued` sends one,
    to the queue of the row's host, so there are never fewer messages than queued rows, and taking the first in
    the queue's order makes the queue go in that order whatever order the broker hands messages out in (a resumed
    download keeps its place). A worker takes downloads aimed at any worker and those aimed at its own host.

    A message that finds nothing to run, or no free slot, does nothing: when a slot frees, the worker whose
    download ended takes the next queued one itself (this loop), and tells the other hosts' queues when one of
    their downloads may now start. A worker that is full (its own limit) while another live worker that takes the
    same queue has a free slot passes the message on (at most PASS_ON_HOPS times, counted in `hops`), so an idle
    worker starts it. A download that still waits past MODELDESK_RECONCILE_GRACE_SECONDS is sent again by the
    reconciler. `stopping` says whether the worker was asked to stop: then it takes nothing after the download it
    ran (a download that ended just as the worker was told to stop would otherwise start the next one and hold
    the shutdown for its whole transfer)."""
    host = Download.objects.filter(pk=download_id).values_list("host", flat=True).first()
    if host is None:
        return None
    hosts = sorted({host, "", location.current_host()})
    result = None
    ran = False
    while True:
        if ran and stopping is not None and stopping():
            break
        claimed, token, why = _claim_next(hosts=hosts, worker=worker)
        if claimed is None:
            if why == WORKER_LIMIT and not ran:
                _pass_on(download_id=download_id, host=host, worker=worker, hops=hops)
            break
        ran = True
        result = _download_execute(claimed, token)
        if result is None or result.status == Download.Status.QUEUED:
            # Handed back (the worker is stopping) or taken over as stale: this worker takes nothing more.
            break
    if ran:
        _tell_other_queues(hosts)
    return result


# How many times full workers may pass one message on before it is dropped (the reconciler sends it later): the
# broker may well hand it back to the same full worker (whichever consumer asks first gets it), so a few tries.
PASS_ON_HOPS = 10


def _pass_on(*, download_id: uuid.UUID | str, host: str, worker: str, hops: int) -> bool:
    """This worker is at its own limit: send the message again, to the same queue, when another live worker that
    takes that queue runs fewer downloads than the limit (the broker hands it to a consumer that waits, most likely
    that one). The others' limit is taken to be this worker's: each reads its own setting. True when sent."""
    if hops >= PASS_ON_HOPS:
        return False
    from config.celery import app
    from config.health.selectors import workers_seen

    queue = location.host_queue(host) if host else app.conf.task_default_queue
    others = [seen.name for seen in workers_seen() if not seen.silent and seen.name != worker and queue in seen.queues]
    if not others:
        return False
    busy = dict(
        Download.objects.filter(status__in=Download.RUNNING, worker__in=others)
        .values_list("worker")
        .annotate(running=Count("pk"))
        .order_by()
    )
    if all(busy.get(name, 0) >= settings.MODELDESK_WORKER_CONCURRENT_DOWNLOADS for name in others):
        return False
    return download_publish(download_id=download_id, host=host, hops=hops + 1)


def _tell_other_queues(hosts: list[str]) -> None:
    """A slot freed under the global limit: the queues of hosts this worker cannot run for may have a download
    whose message was dropped while every slot was taken. One message to each such queue (one is enough: its
    worker goes on with the next one itself)."""
    if settings.MODELDESK_MAX_CONCURRENT_DOWNLOADS <= 0:
        return
    rows = Download.objects.filter(status=Download.Status.QUEUED).exclude(host__in=hosts)
    for other in rows.order_by().values_list("host", flat=True).distinct():
        first = rows.filter(host=other).values_list("pk", flat=True).first()
        if first is not None:
            download_publish(download_id=first, host=other)


def download_run(
    *,
    download_id: str | uuid.UUID,
    worker: str = "",
    on_progress: Callable[[downloader.Progress], None] | None = None,
    rate_limit: downloader.RateLimit | None = None,
) -> Download | None:
    """Run one queued download to its end, now, whatever its place and the limits (`manage.py pull`; the workers
    go through `download_run_next`). Claims the row first; does nothing if it is not queued any more.

    Transient faults are retried here with backoff and jitter, each attempt resuming the partial file;
    permanent ones fail the row with a message that says what to do. `rate_limit`, when given, is asked about
    once a second for the bytes a second this download may use now (None: no limit) instead of the limits set on
    the downloads page; all its connections share that budget.
    """
    token = _claim(download_id, worker)
    if token is None:
        return None  # already claimed, finished, cancelled or gone: running twice has one effect
    return _download_execute(download_id, token, on_progress=on_progress, rate_limit=rate_limit)


def _download_execute(
    download_id: str | uuid.UUID,
    token: uuid.UUID,
    *,
    on_progress: Callable[[downloader.Progress], None] | None = None,
    rate_limit: downloader.RateLimit | None = None,
) -> Download | None:
    """The transfer of a download this runner claimed with `token`, to its end (see download_run)."""
    download = Download.objects.get(pk=download_id)
    claim = _Claim(download.pk, token)
    if rate_limit is None:
        # The bandwidth limits (its own and its share of the global one), asked about once a second: a limit
        # changed on the page applies while it runs.
        def rate_limit() -> float | None:
            return download_speed_limit(download.pk)

    def report(progress: downloader.Progress) -> bool:
        if on_progress is not None:
            on_progress(progress)
        return claim.update(
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
            speed=progress.speed,
            eta=progress.eta,
        )

    def close_thread_connection() -> None:
        connection.close()

    def cancelled() -> bool:
        return Download.objects.filter(pk=download.pk, status=Download.Status.CANCELLED).exists()

    # Counted on the row (a resumed download goes on counting): the page, the API and the messages agree.
    attempt = download.attempts
    while True:
        try:
            asked = time.monotonic()
            remotes = _remote_parts(download)
            remote = remotes[0]
            sizes = [part.size for part in remotes]
            total = None if None in sizes else sum(sizes)
            # Rows queued while the Hub could not be asked (or before the rules changed) meet the rules here.
            refused = pull_source_problem(
                repo=download.repo,
                filename=pull_label(filename=download.filename, parts=len(remotes), size=total),
                size=total,
            )
            if refused is not None:
                claim.finish(Download.Status.FAILED, error_code=refused.error_code, error_message=refused.reason)
                return _reload(download)
            if not claim.update(commit=remote.commit, etag=remote.etag, bytes_total=total, parts=len(remotes)):
                return _reload(download)
            started = time.monotonic()
            verified = _fetch_parts(remotes, total=total, report=report, claim=claim,
                                    thread_exit=close_thread_connection, discard=cancelled,
                                    rate_limit=rate_limit)  # fmt: skip
            seconds = time.monotonic() - started
            logger.info(
                "download %s: %s/%s %s verified and in the cache; metadata %.2f s, transfer %.2f s (%.0f MB/s)",
                download.pk, download.repo, download.filename, verified or "nothing", started - asked, seconds,
                (total or 0) / max(seconds, 1e-6) / 1e6,
            )  # fmt: skip
            close_old_connections()
            if download.moves_ref:
                try:
                    modelfile_ref_move(repo=download.repo, filename=download.filename, ref=download.moves_ref,
                                       commit=remote.commit)  # fmt: skip
                except Exception:  # the file is in the cache all the same; "Update" again moves the ref
                    logger.exception("download %s: moving %s to %s failed", download.pk, download.moves_ref,
                                     remote.commit)  # fmt: skip
            # Listed before the row says completed: whoever sees "completed" finds the file (and its alias) too.
            try:
                modelfile_sync(repo=download.repo)
            except Exception:  # the file is in the cache all the same; the next scan lists it
                logger.exception("download %s: listing %s failed", download.pk, download.repo)
            claim.finish(
                Download.Status.COMPLETED,
                bytes_done=total or F("bytes_done"),
                verified=verified,
                part=None,
                error_code="",
                error_message="",
            )
            return _reload(download)
        except downloader.Stopped:
            # Paused, cancelled, or another worker took it over: the row already says so.
            return _reload(download)
        except hub.HubError as error:
            if not error.transient or attempt >= MAX_ATTEMPTS:
                message = error.message
                if error.transient:
                    message = f"{message.removesuffix('; will try again.').removesuffix('; resuming.')} " \
                              f"— gave up after {attempt} attempts. Retry when the Hub is reachable."  # fmt: skip
                claim.finish(Download.Status.FAILED, error_code=error.code, error_message=message)
                return _reload(download)
            delay = _backoff(attempt)
            logger.info("download %s: %s (attempt %s, next in %.1f s)", download.pk, error.message, attempt, delay)
            # The numbers (attempt n of m, next in s) are the row's, shown by the pages from `attempts` and
            # `retry_at`: the message says only what went wrong, so it never disagrees with them.
            retry_at = timezone.now() + timedelta(seconds=delay)
            if not claim.update(error_code=error.code, error_message=error.message, speed=None, eta=None,
                                retry_at=retry_at):  # fmt: skip
                return _reload(download)
            if not _wait(claim, delay):
                return _reload(download)
            attempt += 1
            if not claim.update(attempts=F("attempts") + 1, retry_at=None):
                return _reload(download)
        except Exception:
            logger.exception("download %s failed unexpectedly", download.pk)
            kept = Download.objects.filter(pk=download.pk).values_list("bytes_done", flat=True).first()
            resume = f" Retry continues from the {human_bytes(kept)} already fetched." if kept else ""
            claim.finish(
                Download.Status.FAILED,
                error_code="internal_error",
                error_message=f"An unexpected error stopped the download; the worker log has the details.{resume}",
            )
            return _reload(download)


def _reload(download: Download) -> Download | None:
    return Download.objects.filter(pk=download.pk).first()


_FILE_ALIAS_FIELDS = ("alias", "source", "repo", "filename", "snapshot")
_DEFAULTED_ALIAS_FIELDS = [field.name for field in Alias._meta.fields if field.name not in _FILE_ALIAS_FIELDS]


def _part_error(error: hub.HubError, *, number: int, count: int, filename: str) -> hub.HubError:
    """The same fault, its message naming the part of the split set it happened to."""
    if count <= 1:
        return error
    return hub.HubError(error.code, f"Part {number} of {count} ({filename}): {error.message}",
                        transient=error.transient)  # fmt: skip


def _remote_parts(download: Download) -> list[hub.RemoteFile]:
    """The Hub's word on each file of the download: part 1 at the revision as asked, the other parts at the commit
    it resolved to, so every part comes from one snapshot even if the branch moves meanwhile."""
    names = download.part_filenames
    remotes: list[hub.RemoteFile] = []
    for number, name in enumerate(names, 1):
        revision = download.revision if not remotes else remotes[0].commit
        try:
            remotes.append(hub.file_metadata(download.repo, name, revision))
        except hub.HubError as error:
            raise _part_error(error, number=number, count=len(names), filename=name) from error
    return remotes


def _fetch_parts(
    remotes: list[hub.RemoteFile],
    *,
    total: int | None,
    report: downloader.Reporter,
    claim: _Claim,
    thread_exit: Callable[[], None],
    discard: Callable[[], bool] | None = None,
    rate_limit: downloader.RateLimit | None = None,
) -> str:
    """Fetch each file in turn (resumable, its hash checked before it becomes visible); the verified kind.

    Progress is the set's: the bytes of the parts already here plus the current part's, the ETA over what is left
    of the whole set. The parts of a split set are published at the commit and the ref (`main`) is written only
    once all are in, so the revision never points at a snapshot with half a model; parts already in the snapshot
    (an earlier attempt, another tool) are not fetched again.
    """
    split = len(remotes) > 1
    done_before = 0
    verified = ""
    for number, remote in enumerate(remotes, 1):
        if split and cache.local_file(remote.repo, remote.filename, remote.commit) is not None:
            done_before += remote.size or 0
            continue
        # The etag is the part being fetched: a cancel deletes that part's partial file.
        if split and not claim.update(part=number, etag=remote.etag):
            raise downloader.Stopped

        def report_set(progress: downloader.Progress, before: int = done_before) -> bool:
            if not split:
                return report(progress)
            done = before + progress.bytes_done
            if total is not None:
                done = min(done, total)
            eta = (total - done) / progress.speed if progress.speed and total is not None else None
            return report(downloader.Progress(done, total, progress.speed, eta))

        target = replace(remote, revision=remote.commit) if split else remote
        try:
            fetched = downloader.fetch(target, report=report_set, thread_exit=thread_exit, discard=discard,
                                       rate_limit=rate_limit)  # fmt: skip
        except hub.HubError as error:
            raise _part_error(error, number=number, count=len(remotes), filename=remote.filename) from error
        # The weaker check wins when kinds differ: "verified" never claims more than was compared.
        if verified != downloader.VERIFIED_GIT_SHA1:
            verified = fetched.verified
        done_before += remote.size or 0
    first = remotes[0]
    if split and first.revision != first.commit:
        cache.write_ref(first.repo, first.revision, first.commit)
    return verified


def _modelfile_problem(item: cache.CachedGguf, *, seen: dict[tuple[str, str], str | None] | None = None) -> str | None:
    """Why a cached file cannot be a ModelFile row and its read-only alias, or None.

    The alias rules are run here, before anything is written: one file they refuse must not roll the scan back.
    `seen` keeps the answers of one scan by (repo, filename): the same file in another snapshot gets the same
    answer, as every snapshot the scanner reports is a 40-hex commit, which the snapshot rule always accepts.
    """
    for name, value in (("repo", item.repo), ("filename", item.filename), ("etag", item.etag)):
        limit = ModelFile._meta.get_field(name).max_length
        if len(value) > limit:
            return f"the {name} is longer than {limit} characters"
    memo = seen is not None and cache.COMMIT_RE.fullmatch(item.snapshot) is not None
    key = (item.repo, item.filename)
    if memo and key in seen:
        return seen[key]
    alias = Alias(
        alias=model_alias_name(item.repo, item.filename),
        source=Alias.Source.MODEL,
        repo=item.repo,
        filename=item.filename,
        snapshot=item.snapshot,
    )
    problem = None
    try:
        # Only the fields taken from the file: the others hold the model's defaults, the same for every file.
        alias.full_clean(exclude=_DEFAULTED_ALIAS_FIELDS, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problem = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    if memo:
        seen[key] = problem
    return problem


def _scan_report_save(*, repo: str | None, counts: dict[str, int], skipped: list[cache.Skipped]) -> None:
    """Keep the latest report: a whole-cache scan replaces it, a one-repo scan replaces that repo's entries."""
    report = CacheScan.objects.select_for_update().order_by("pk").first()
    entries = [entry.as_dict() for entry in skipped]
    if repo is not None and report is not None:
        folder = cache.repo_folder_name(repo)
        kept = [
            entry for entry in report.skipped if entry["path"] != folder and not entry["path"].startswith(folder + "/")
        ]
        entries = kept + entries
    values = {
        "finished_at": timezone.now(),
        "counts": counts,
        "skipped": entries[: CacheScan.SKIPPED_KEPT],
        "skipped_total": len(entries),
    }
    if report is None:
        CacheScan.objects.create(**values)
    else:
        CacheScan.objects.filter(pk=report.pk).update(**values)


def modelfile_sync(*, repo: str | None = None, by: AbstractBaseUser | None = None) -> dict:
    """Bring ModelFile rows in step with the cache (all repos, or one): new files appear, gone ones vanish.

    An entry that cannot be listed (an odd or undecodable name, a broken link, a missing blob, a folder that is
    not a commit or a repo id) is skipped and reported; the rest lands. The answer, also kept as the latest
    CacheScan: {"created", "updated", "removed", "present", "skipped": [{"path", "reason"}]}.

    The walk and the header reads happen before the transaction: on SQLite a write transaction holds the
    database's one write lock, and a first scan of a large shelf must not keep every other writer waiting.
    """
    scan = cache.scan_gguf(repo=repo)
    skipped = list(scan.skipped)
    found: dict[tuple[str, str, str], cache.CachedGguf] = {}
    # A repo and file name some row already has passed the alias rules when that row was stored: only new names
    # are checked (the check is most of an unchanged rescan's time otherwise).
    stored = ModelFile.objects.all() if repo is None else ModelFile.objects.filter(repo=repo)
    seen: dict[tuple[str, str], str | None] = dict.fromkeys(stored.values_list("repo", "filename").distinct())
    for item in scan.files:
        problem = _modelfile_problem(item, seen=seen)
        if problem:
            skipped.append(cache.Skipped(item.path, problem))
        else:
            found[(item.repo, item.filename, item.snapshot)] = item
    if skipped:
        logger.warning("cache scan skipped %s entr%s", len(skipped), "y" if len(skipped) == 1 else "ies")
    # Files per host (issue 8, item 10): this process's cache is one location; the rows step reads and writes
    # only its rows, so a host's scan never marks another host's files gone.
    here = location_current()
    headers = _HeaderValues(repo=repo)
    headers.read_new(found.values())
    with transaction.atomic():
        counts, existing, gone, loadable = _modelfile_rows_sync(repo=repo, found=found, headers=headers, location=here)
        # Generated aliases only for files that can load, which the headers told; every location's, not only this
        # one's: a generated alias stays while any host has its file.
        alias_sync_model_files(
            files=loadable + modelfile_loadable(repo=repo, exclude=here),
            repo=repo,
            validated=True,  # this location's loadable files are in `found`, whose files _modelfile_problem checked
        )
        _audit_scan(repo=repo, found=found, existing=existing, gone=gone, updated=counts["updated"], by=by)
        _scan_report_save(repo=repo, counts=counts, skipped=skipped)
    if headers.read or headers.copied:  # the periodic scan of an unchanged cache says nothing
        logger.info(
            "cache scan: %s GGUF header(s) read, %s copied from rows of the same blob", headers.read, headers.copied
        )
    return {**counts, "skipped": [entry.as_dict() for entry in skipped]}


# Rows per INSERT / UPDATE statement of the sync.
SYNC_BATCH = 500
_SYNCED_FIELDS = ("refs", "size", "etag", "modified_at", "present")
_SET_FIELDS = ("split_no", "split_count", "split_present", "split_total_size")
# What the sync reads of each stored row, besides its key.
_STORED_FIELDS = ("pk", *_SYNCED_FIELDS, "gguf_read_key", "state", *_SET_FIELDS, "location_id")


@dataclass(frozen=True)
class _StoredFile:
    """What the sync compares of a stored row: read as plain values, not as model instances."""

    pk: int
    refs: list
    size: int
    etag: str
    modified_at: object
    present: bool
    gguf_read_key: str
    state: str
    split_no: int | None
    split_count: int | None
    split_present: int | None
    split_total_size: int | None
    location_id: int | None


def _modelfile_rows_sync(
    *,
    repo: str | None,
    found: dict[tuple[str, str, str], cache.CachedGguf],
    headers: _HeaderValues,
    location: Location,
) -> tuple[dict[str, int], dict[tuple[str, str, str], _StoredFile], list[int], list[LocalModelFile]]:
    """The ModelFile rows brought in step with `found`: one query reads the stored rows (locked), then batched
    INSERTs for new files (with their header values and states), batched UPDATEs for changed ones and one UPDATE
    marks the vanished ones gone.

    Answers the counts, the stored rows as they were ({key: row}), the primary keys of the rows marked gone, and
    the files an alias can load as they are now.
    """
    # Files per host: only this location's rows, and the rows from before locations were known (location empty),
    # which this scan adopts (found here: they get its location; not found: marked gone, left without one).
    rows = ModelFile.objects.select_for_update().filter(Q(location=location) | Q(location__isnull=True))
    if repo is not None:
        rows = rows.filter(repo=repo)
    existing = {
        (row_repo, filename, snapshot): _StoredFile(*values)
        for row_repo, filename, snapshot, *values in rows.values_list(
            "repo",
            "filename",
            "snapshot",
            *_STORED_FIELDS,
            # This location's own row wins (comes last) over a leftover without one for the same file.
        ).order_by(F("location_id").asc(nulls_first=True))
    }
    wanted: dict[tuple[str, str, str], dict] = {}
    read_anew: set[tuple[str, str, str]] = set()
    for key, item in found.items():
        row = existing.get(key)
        read_key = _read_key(item)
        values = {
            "refs": list(item.refs),
            "size": item.size,
            "etag": item.etag,
            "modified_at": item.modified_at,
            "present": True,
        }
        if row is not None and row.gguf_read_key and row.gguf_read_key == read_key:
            # The same blob as last time: its header values stand; only its state and set may move.
            values["state"] = row.state
            values["split_no"], values["split_count"] = row.split_no, row.split_count
        else:
            read_anew.add(key)
        wanted[key] = values
    headers.copy_from_stored({(key[0], _read_key(found[key])) for key in read_anew})
    for key in read_anew:
        item = found[key]
        wanted[key].update(headers.values(item, _read_key(item)))
    _split_sets(wanted)
    now = timezone.now()
    new: list[dict] = []
    changed: dict[tuple[str, ...], list[ModelFile]] = {}
    for key, values in wanted.items():
        row = existing.get(key)
        if row is None:
            new.append({"location": location.pk, "repo": key[0], "filename": key[1], "snapshot": key[2], **values})
            continue
        fields = tuple(name for name, value in values.items() if key in read_anew or getattr(row, name) != value)
        if row.location_id != location.pk:  # a row from before locations were known: this scan adopts it
            fields += ("location",)
        if fields:
            # bulk_update does not apply auto_now: scanned_at is set here, as save() would.
            changed.setdefault(fields, []).append(ModelFile(pk=row.pk, scanned_at=now, location=location, **values))
    bulk_insert(ModelFile, new)  # nothing reads their keys back: the gone list and the audit use the stored rows
    for fields, group in changed.items():
        ModelFile.objects.bulk_update(group, [*fields, "scanned_at"], batch_size=SYNC_BATCH)
    gone = [row.pk for key, row in existing.items() if key not in found and row.present]
    removed = 0
    for start in range(0, len(gone), SYNC_BATCH):
        removed += ModelFile.objects.filter(pk__in=gone[start : start + SYNC_BATCH]).update(present=False)
    counts = {
        "created": len(new),
        "updated": sum(len(group) for group in changed.values()),
        "removed": removed,
        "present": len(found),
    }
    loadable = [
        LocalModelFile(key[0], key[1], key[2], tuple(values["refs"]))
        for key, values in wanted.items()
        if values["state"] == ModelFile.State.OK and (not values["split_count"] or values["split_no"] == 1)
    ]
    return counts, existing, gone, loadable


# --- pre-flight and source rules -------------------------------------------------------------------------------------

# A queued row's error_code while nobody has asked the Hub about it yet (the pre-flight could not); cleared when a
# worker claims it. Pages and the API show its message as a note, not as an error.
HUB_UNCHECKED = "hub_unchecked"


class PullRefused(ValidationError):
    """A pull refused before any row exists, by a source rule or by the Hub's answer to the pre-flight.

    A ValidationError on `param` (the form and `manage.py pull` show it as any other rule); the API answers
    `status` with `error_code`.
    """

    def __init__(self, reason: str, *, error_code: str, status: int, param: str | None):
        super().__init__({param or NON_FIELD_ERRORS: [ValidationError(reason, code=error_code)]})
        self.reason = reason
        self.error_code = error_code
        self.status = status
        self.param = param


def repo_allowed(repo: str) -> bool:
    """True when MODELDESK_ALLOWED_REPOS is empty or a pattern matches owner/name (a pattern without "/" is an
    owner). Case-insensitive, as the Hub's repo ids are: "thebloke/x" must not slip past "TheBloke/*"."""
    patterns = settings.PULL_ALLOWED_REPOS
    if not patterns:
        return True
    name = repo.lower()
    owner = name.split("/", 1)[0]
    for pattern in patterns:
        pattern = pattern.lower()
        if fnmatch.fnmatchcase(name if "/" in pattern else owner, pattern):
            return True
    return False


def pull_source_problem(*, repo: str, filename: str = "", size: int | None = None) -> PullRefused | None:
    """What the source rules say against a pull (repo allow-list, size limit), or None."""
    if not repo_allowed(repo):
        return PullRefused(
            f"{repo} is not allowed: pulls are limited to the repos matching MODELDESK_ALLOWED_REPOS "
            f"({', '.join(settings.PULL_ALLOWED_REPOS)}). Ask an admin to add it.",
            error_code="repo_not_allowed",
            status=403,
            param="repo",
        )
    limit = settings.PULL_MAX_FILE_BYTES
    if limit and size is not None and size > limit:
        return PullRefused(
            f"{filename or 'This file'} is {human_bytes(size)}, more than the "
            f"{human_bytes(limit)} a pull may fetch (MODELDESK_MAX_FILE_BYTES). Pick a smaller file "
            "(another quantisation), or ask an admin to raise the limit.",
            error_code="file_too_large",
            status=403,
            param="filename",
        )
    return None


def pull_source_check(*, repo: str, filename: str = "", size: int | None = None) -> None:
    """Raise PullRefused when the source rules refuse the pull."""
    refused = pull_source_problem(repo=repo, filename=filename, size=size)
    if refused is not None:
        raise refused


# What the pre-flight refuses at once, by the Hub's answer: (status, the field at fault). Any other answer queues
# the pull, and the worker, which asks again, fails it with the same message if it stands.
PREFLIGHT_REFUSALS = {
    "gated_repo": (403, "repo"),
    "unauthorized": (403, "repo"),
    "repo_not_found": (404, "repo"),
    "revision_not_found": (404, "revision"),
    "file_not_found": (404, "filename"),
}


def pull_preflight(*, repo: str, filename: str, revision: str) -> str:
    """Ask the Hub about the file (every part, for a split set) before queueing it, waiting at most
    MODELDESK_PREFLIGHT_TIMEOUT_SECONDS for each answer.

    Raises PullRefused for a gated, private or missing repo, a missing revision or file (a missing part names
    it), a file or set over the size limit or larger than the free space (less the disk reserve). Returns "" when
    the Hub's answer is fine, or the note to queue the pull with when the Hub could not be asked (unreachable,
    too slow, 5xx) or gave an answer the worker will judge.
    """
    return _pull_preflight(repo=repo, parts=pull_parts(filename), revision=revision)[0]


def _pull_preflight(*, repo: str, parts: list[str], revision: str) -> tuple[str, int | None]:
    """pull_preflight for these files: (the note, their total size when the Hub gave every size)."""
    timeout = settings.PULL_PREFLIGHT_TIMEOUT_SECONDS
    remotes: list[hub.RemoteFile] = []
    for number, part in enumerate(parts, 1):
        try:
            remotes.append(hub.file_metadata(repo, part, revision, timeout=timeout))
        except hub.HubError as error:
            problem = _part_error(error, number=number, count=len(parts), filename=part)
            if error.code in PREFLIGHT_REFUSALS:
                status, param = PREFLIGHT_REFUSALS[error.code]
                raise PullRefused(problem.message, error_code=error.code, status=status, param=param) from error
            if error.transient:
                reason = hub.unreachable_reason(error, error.__cause__, timeout=timeout)
                note = (
                    f"Could not check with the Hub ({reason}); queued anyway. The worker asks the Hub again and "
                    "retries until it answers; check HF_ENDPOINT if this persists."
                )
                return note, None
            return (
                f"The Hub's answer could not be checked ({problem.message}); queued anyway, the worker decides.",
                None,
            )
    sizes = [remote.size for remote in remotes]
    total = None if None in sizes else sum(sizes)
    label = pull_label(filename=parts[0], parts=len(parts), size=total)
    pull_source_check(repo=repo, filename=label, size=total)
    # Parts already in the cache need no room; the others are checked together, against the set's total.
    missing = [
        remote for remote in remotes if len(parts) == 1 or cache.local_file(repo, remote.filename, revision) is None
    ]
    if all(remote.size is not None for remote in missing):
        _space_check(repo=repo, filename=label, remotes=missing)
    return "", total


def _space_check(*, repo: str, filename: str, remotes: list[hub.RemoteFile]) -> None:
    paths = cache.RepoPaths.for_repo(repo)
    needed = 0
    for remote in remotes:
        # A partial file of an earlier attempt is resumed: only the rest needs room (its bytes, not its length:
        # one fetched in ranges has holes).
        done = downloader.partial_bytes(repo, remote.etag)
        needed += max(remote.size - done, 0)
    free = cache.free_bytes(paths.blobs)
    if free - downloader.DISK_RESERVE < needed:
        raise PullRefused(
            f"Not enough disk space for {filename}: it needs {human_bytes(needed)} (plus a reserve of "
            f"{human_bytes(downloader.DISK_RESERVE)}), the cache volume has "
            f"{human_bytes(free)} free. Free some space (delete unused model files) and retry.",
            error_code="insufficient_space",
            status=400,
            param="filename",
        )


# --- GGUF metadata and file states ---------------------------------------------------------------------------------

_HEADER_FIELDS = {
    "gguf_error": "error",
    "gguf_architecture": "architecture",
    "gguf_name": "name",
    "gguf_parameters": "parameters",
    "gguf_size_label": "size_label",
    "gguf_quantization": "quantization",
    "gguf_context_length": "context_length",
    "gguf_embedding_length": "embedding_length",
    "gguf_block_count": "block_count",
    "gguf_tokenizer_model": "tokenizer_model",
    "gguf_chat_template": "chat_template",
}


def _read_key(item: cache.CachedGguf | ModelFile) -> str:
    """The blob behind a file: its name is its hash, so the same name and size is the same content."""
    return f"{item.etag or item.modified_at.timestamp()}/{item.size}"


def _header_values(header: gguf_header.GgufHeader) -> dict:
    values = {field: getattr(header, name) for field, name in _HEADER_FIELDS.items()}
    values["gguf_error"] = values["gguf_error"][:255]
    values["gguf_chat_template"] = values["gguf_chat_template"] or ""
    values["state"] = header.state
    values["split_no"], values["split_count"] = header.split_no, header.split_count
    return values


class _HeaderValues:
    """The GGUF header values of the files a sync found, cached by blob (see `_read_key`).

    A blob some stored row of the same repo has read is never opened again: its values are copied from that row,
    so an unchanged file costs nothing and the same file in another snapshot costs one look-up. `read_new` opens
    the blobs no row has read yet, before the sync's transaction; `values` answers for one file inside it (and
    reads it then, should it have appeared in between). A file that cannot be opened at all (permissions) gets
    an empty key: not the file's fault, so the next scan tries again. A `corrupt` set by verification travels
    with the blob's values until the blob changes.
    """

    def __init__(self, *, repo: str | None) -> None:
        self.repo = repo
        self.read = 0
        self.copied = 0
        self._fresh: dict[tuple[str, str], dict] = {}
        self._stored: dict[tuple[str, str], dict] = {}
        self._hub = os.fspath(cache.hub_dir())

    def _known_keys(self) -> set[tuple[str, str]]:
        rows = ModelFile.objects.exclude(gguf_read_key="")
        if self.repo is not None:
            rows = rows.filter(repo=self.repo)
        return set(rows.values_list("repo", "gguf_read_key").distinct())

    def _read(self, item: cache.CachedGguf, read_key: str) -> dict:
        # Joined as text: pathlib's parsing per file costs a tenth of a header read.
        header = gguf_header.read_header(os.path.join(self._hub, item.path))
        self.read += 1
        values = _header_values(header)
        values["gguf_read_key"] = "" if header.error.startswith("cannot be opened") else read_key
        return values

    def read_new(self, items: Iterable[cache.CachedGguf]) -> None:
        known = self._known_keys()
        for item in items:
            key = (item.repo, _read_key(item))
            if key not in known and key not in self._fresh:
                self._fresh[key] = self._read(item, key[1])

    def copy_from_stored(self, keys: set[tuple[str, str]]) -> None:
        """Fetch the header values stored rows hold for these blobs (those not read just now), one query per
        SYNC_BATCH keys."""
        wanted = sorted(keys - self._fresh.keys())
        fields = ("repo", "gguf_read_key", "state", "split_no", "split_count", *_HEADER_FIELDS)
        for start in range(0, len(wanted), SYNC_BATCH):
            batch = wanted[start : start + SYNC_BATCH]
            rows = ModelFile.objects.filter(
                repo__in={repo for repo, _key in batch}, gguf_read_key__in={key for _repo, key in batch}
            ).order_by("pk")
            for values in rows.values(*fields):
                self._stored.setdefault((values.pop("repo"), values["gguf_read_key"]), values)

    def values(self, item: cache.CachedGguf, read_key: str) -> dict:
        key = (item.repo, read_key)
        if key in self._fresh:
            values = self._fresh[key]
        elif key in self._stored:
            values = self._stored[key]
            self.copied += 1
        else:  # appeared since `read_new` (another scan's rows went in between): read it now
            values = self._fresh[key] = self._read(item, read_key)
        values = dict(values)
        if values["state"] == ModelFile.State.INCOMPLETE:  # the set decides that, for this snapshot
            values["state"] = ModelFile.State.OK
        return values


def _split_sets(wanted: dict[tuple[str, str, str], dict]) -> None:
    """Group split parts (`x-00001-of-00003.gguf`) by snapshot and set each file's set values; a set with a part
    missing or damaged is `incomplete` on each of its readable parts (and so never loads)."""
    sets: dict[tuple[str, str, str, int], dict[int, dict]] = {}
    for (repo, filename, snapshot), values in wanted.items():
        name = gguf_header.split_name(filename)
        if name is None:
            if values["state"] == ModelFile.State.INCOMPLETE:  # was a part once (a renamed file): judge it alone
                values["state"] = ModelFile.State.OK
            values["split_present"] = values["split_total_size"] = None
        else:
            sets.setdefault((repo, snapshot, name.prefix, name.count), {})[name.number] = values
    readable = (ModelFile.State.OK, ModelFile.State.INCOMPLETE)
    for (_repo, _snapshot, _prefix, count), parts in sets.items():
        loadable = len(parts) == count and all(part["state"] in readable for part in parts.values())
        total = sum(part["size"] for part in parts.values())
        for number, part in parts.items():
            part.update(split_no=number, split_count=count, split_present=len(parts), split_total_size=total)
            if part["state"] in readable:
                part["state"] = ModelFile.State.OK if loadable else ModelFile.State.INCOMPLETE


def modelfile_loadable(*, repo: str | None = None, exclude: Location | None = None) -> list[LocalModelFile]:
    """The files an alias can load as they are (readable, complete, the first part of a split set), in every
    location but `exclude`."""
    rows = ModelFile.objects.filter(present=True, state=ModelFile.State.OK).filter(
        Q(split_count__isnull=True) | Q(split_no=1)
    )
    if repo is not None:
        rows = rows.filter(repo=repo)
    if exclude is not None:
        rows = rows.exclude(location=exclude)
    return [
        LocalModelFile(repo_name, filename, snapshot, tuple(refs or ()))
        for repo_name, filename, snapshot, refs in rows.values_list("repo", "filename", "snapshot", "refs")
    ]


# --- delete and cleanup (issue 8, items 4 and 5) -------------------------------------------------------------------


class ModelFileInUse(Exception):
    """User aliases load the file: deleting it makes them unavailable, so it needs a confirmation (`force`)."""

    def __init__(self, aliases: list[str]):
        self.aliases = aliases
        names = ", ".join(aliases)
        super().__init__(
            f"{len(aliases)} alias{'es' if len(aliases) != 1 else ''} load{'' if len(aliases) != 1 else 's'} this "
            f"file and would become unavailable: {names}. Confirm to delete it anyway."
        )


class ModelFileBusy(Exception):
    """An active download is writing this file (or may be: its commit is not known yet)."""

    def __init__(self, download: Download):
        self.download = download
        super().__init__(
            f"A download of {download.repo}/{download.filename}@{download.revision} is {download.status}; cancel it "
            "or wait for it to finish before deleting the file."
        )


class ModelFileElsewhere(ModelFileBusy):
    """The file is in another host's cache: this process can only delete from its own (409 like a busy file)."""

    def __init__(self, modelfile: ModelFile):
        self.download = None
        Exception.__init__(
            self,
            f"{modelfile.filename} is in the cache of {modelfile.location}, not in this host's "
            f"({location.current_host()}); it can only be deleted on a machine that reads that cache.",
        )


def _alias_commit(repo: str, snapshot: str, resolved: dict[tuple[str, str], str | None]) -> str | None:
    key = (repo, snapshot)
    if key not in resolved:
        resolved[key] = cache.resolve_revision(repo, snapshot)
    return resolved[key]


def modelfile_revisions(*, modelfile: ModelFile, all_revisions: bool) -> list[ModelFile]:
    """The rows a delete removes: the file's own revision, or every cached revision of that repo and filename."""
    if not all_revisions:
        return [modelfile]
    # Files per host: the revisions in the same cache.
    rows = ModelFile.objects.filter(location=modelfile.location_id, repo=modelfile.repo, filename=modelfile.filename)
    return list(rows.filter(present=True))


def modelfile_users(*, files: list[ModelFile]) -> dict[str, list[str]]:
    """{"user": [...], "model": [...]}: names of the aliases that load any of these files (by commit, or by a ref
    that points at it), user aliases apart from the generated ones (those go with their file)."""
    users: dict[str, list[str]] = {Alias.Source.USER: [], Alias.Source.MODEL: []}
    if not files:
        return users
    repo, filename = files[0].repo, files[0].filename
    commits = {file.snapshot for file in files}
    refs = {ref for file in files for ref in (file.refs or ())}
    rows = Alias.objects.filter(repo=repo, filename=filename).order_by("alias", "pk")
    for name, snapshot, source in rows.values_list("alias", "snapshot", "source"):
        if snapshot in commits or snapshot in refs:
            users.setdefault(source, []).append(name)
    return users


def _active_writer(files: list[ModelFile]) -> Download | None:
    if not files:
        return None
    commits = {file.snapshot for file in files}
    etags = {file.etag for file in files if file.etag}
    rows = Download.objects.filter(repo=files[0].repo, status__in=Download.ACTIVE).order_by("created_at", "pk")
    for download in rows:
        same_file = files[0].filename in download.part_filenames
        if (same_file and (not download.commit or download.commit in commits)) or download.etag in etags:
            return download
    return None


def cache_protected() -> cleanup.Protected:
    """What the active downloads hold, read from their rows, for the file-system side to leave alone."""
    protected = cleanup.Protected()
    rows = Download.objects.filter(status__in=Download.ACTIVE).values_list(
        "repo", "filename", "revision", "commit", "etag", "parts"
    )
    for repo, filename, revision, commit, etag, parts in rows:
        # A split set's download writes every part (its etag is part 1's: the repo's blobs are all held).
        names = pull_parts(filename) if parts > 1 else [filename]
        protected.files.update((repo, name) for name in names)
        if parts > 1:
            etag = ""
        # A pull asked by commit publishes into that snapshot even before its worker has resolved anything.
        for known in (commit, revision if cache.COMMIT_RE.fullmatch(revision) else ""):
            if known:
                protected.commits.add((repo, known))
        if etag:
            protected.etags.setdefault(repo, set()).add(etag)
        else:
            protected.whole_repos.add(repo)
    return protected


def modelfile_delete(
    *, modelfile: ModelFile, all_revisions: bool = False, force: bool = False, by: AbstractBaseUser | None
) -> cleanup.Removal:
    """Delete a cached file (its revision, or every revision of it) and bring the rows in step.

    Raises ModelFileBusy while an active download writes it, and ModelFileInUse while user aliases load it unless
    `force` (the confirmation page, or `?force=1`). The file-system part cannot be rolled back, so every check
    comes first; the audit entries and the re-sync land together afterwards.
    """
    if _elsewhere(modelfile):
        raise ModelFileElsewhere(modelfile)
    files = modelfile_revisions(modelfile=modelfile, all_revisions=all_revisions)
    busy = _active_writer(files)
    if busy is not None:
        raise ModelFileBusy(busy)
    users = modelfile_users(files=files)
    if users[Alias.Source.USER] and not force:
        raise ModelFileInUse(users[Alias.Source.USER])
    removal = cleanup.delete_file(
        repo=modelfile.repo,
        filename=modelfile.filename,
        commits=[file.snapshot for file in files],
        protected=cache_protected(),
    )
    with transaction.atomic():
        for file in files:
            audit_record(
                actor=by,
                kind="modelfile",
                action="delete",
                object_id=file.pk,
                object_repr=str(file),
                before={
                    "repo": file.repo,
                    "filename": file.filename,
                    "snapshot": file.snapshot,
                    "refs": list(file.refs or ()),
                    "size": file.size,
                    "etag": file.etag,
                    "aliases": users[Alias.Source.USER],
                    "generated_aliases": users[Alias.Source.MODEL],
                    "all_revisions": all_revisions,
                },
            )
        modelfile_sync(repo=modelfile.repo)
    return removal


def _alias_usage() -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    """(repo, commit) and (repo, filename, commit) that user aliases load, refs resolved in the local cache."""
    pinned: set[tuple[str, str]] = set()
    used: set[tuple[str, str, str]] = set()
    resolved: dict[tuple[str, str], str | None] = {}
    for repo, filename, snapshot in Alias.objects.filter(source=Alias.Source.USER).values_list(
        "repo", "filename", "snapshot"
    ):
        commit = _alias_commit(repo, snapshot, resolved)
        if commit is not None:
            pinned.add((repo, commit))
            used.add((repo, filename, commit))
    return pinned, used


def cache_cleanup_plan(*, kinds: Iterable[str] = cleanup.DEFAULT_KINDS) -> list[cleanup.Candidate]:
    """What a cleanup of these kinds would remove now (the dry run); nothing is touched."""
    unknown = set(kinds) - set(cleanup.KINDS)
    if unknown:
        raise ValidationError({"kinds": [f"Unknown kind {sorted(unknown)[0]!r}; use {', '.join(cleanup.KINDS)}."]})
    pinned, used = _alias_usage()
    return cleanup.candidates(protected=cache_protected(), pinned=pinned, used_files=used, kinds=kinds)


def cache_cleanup(*, kinds: Iterable[str] = cleanup.DEFAULT_KINDS, by: AbstractBaseUser | None) -> cleanup.Removal:
    """Remove what the plan names now (computed again here: what an active download took since the preview is
    spared), re-sync the rows and record one audit entry for the run."""
    kinds = list(kinds)
    plan = cache_cleanup_plan(kinds=kinds)
    removal = cleanup.remove(plan, protected=cache_protected())
    with transaction.atomic():
        audit_record(
            actor=by,
            kind="modelfile",
            action="cleanup",
            object_repr="cache cleanup",
            after={
                "kinds": sorted(kinds),
                "freed": removal.freed,
                "removed": removal.removed[:AUDIT_SCAN_FILES],
                "removed_total": len(removal.removed),
                "kept": removal.kept[:AUDIT_SCAN_FILES],
            },
        )
        if plan:
            modelfile_sync()
    return removal


# --- verification (issue 8, item 6) --------------------------------------------------------------------------------

CORRUPT = "corrupt"
# A verification whose heartbeat is older than this lost its worker: a new press starts another.
VERIFY_STALE_SECONDS = STALE_SECONDS


def _modelfile_name(modelfile: ModelFile) -> str:
    return f"{modelfile.repo}/{modelfile.filename}@{modelfile.snapshot}"


def _same_blob(modelfile: ModelFile):
    """The rows whose bytes are this file's blob: snapshots share blobs by etag, so they are damaged together."""
    if modelfile.etag:
        # Files per host: a blob is damaged in one cache, not in another host's copy.
        return ModelFile.objects.filter(location=modelfile.location_id, repo=modelfile.repo, etag=modelfile.etag)
    return ModelFile.objects.filter(pk=modelfile.pk)


def verification_publish(*, verification_id: int) -> bool:
    """Hand a queued verification to the broker; False (logged) when it is unreachable (a new press retries)."""
    from modelfiles.tasks import verify_task

    # Files per host: the bytes are hashed where they are, by a worker of the file's location.
    key = Verification.objects.filter(pk=verification_id).values_list("modelfile__location__key", flat=True).first()
    try:
        if key:
            verify_task.apply_async((verification_id,), queue=location.location_queue(key))
        else:
            verify_task.delay(verification_id)
    except Exception as exc:  # the broker is down: the row stays queued until its heartbeat goes stale
        logger.warning("verification %s: the task queue is unreachable (%s)", verification_id, exc)
        return False
    return True


def verification_request(
    *, modelfile: ModelFile, by: AbstractBaseUser | None, enqueue: bool = True
) -> tuple[Verification, bool]:
    """Queue a re-hash of the file (or return the one already running): (verification, created).

    Raises ValidationError when the file is no longer in the cache. `enqueue=False` leaves running it to the
    caller (`manage.py verify` runs it in its own process).
    """
    if not modelfile.present:
        raise ValidationError(f"{_modelfile_name(modelfile)} is no longer in the cache: nothing to verify.")
    stale = timezone.now() - timedelta(seconds=VERIFY_STALE_SECONDS)
    Verification.objects.filter(modelfile=modelfile, status__in=Verification.ACTIVE, updated_at__lt=stale).update(
        status=Verification.Status.FAILED,
        finished_at=timezone.now(),
        error_message="Its worker stopped before it finished; verify again.",
    )
    for _ in range(3):
        existing = Verification.objects.filter(modelfile=modelfile, status__in=Verification.ACTIVE).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                verification = Verification.objects.create(modelfile=modelfile, requested_by=_user(by))
                audit_record(
                    actor=by,
                    kind="modelfile",
                    action="verify",
                    object_id=modelfile.pk,
                    object_repr=_modelfile_name(modelfile),
                    after={"verification": verification.pk},
                )
                if enqueue:
                    transaction.on_commit(partial(verification_publish, verification_id=verification.pk), robust=True)
            return verification, True
        except IntegrityError:
            continue  # another press won the one-active constraint: return its row
    raise RuntimeError("could not queue the verification")  # pragma: no cover - three lost races in a row


def _verify_expected(modelfile: ModelFile) -> tuple[str, str]:
    """(algorithm, hash): the blob name says it (sha256 for 64 hex, git blob sha1 for 40); else the Hub's etag."""
    etag = modelfile.etag
    if not (hub.SHA256_RE.fullmatch(etag) or hub.GIT_SHA1_RE.fullmatch(etag)):
        etag = hub.file_metadata(modelfile.repo, modelfile.filename, modelfile.snapshot).etag
    if hub.SHA256_RE.fullmatch(etag):
        return downloader.VERIFIED_SHA256, etag
    return downloader.VERIFIED_GIT_SHA1, etag


def verification_run(
    *, verification_id: int, on_progress: Callable[[downloader.Progress], None] | None = None
) -> Verification | None:
    """Hash the file and compare; a mismatch marks it (and every snapshot sharing its blob) corrupt.

    Claims the row first (queued → running), so a redelivered task does nothing.
    """
    claimed = Verification.objects.filter(pk=verification_id, status=Verification.Status.QUEUED).update(
        status=Verification.Status.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    if not claimed:
        return None
    verification = Verification.objects.select_related("modelfile").get(pk=verification_id)
    modelfile = verification.modelfile
    mine = Verification.objects.filter(pk=verification_id, status=Verification.Status.RUNNING)

    def finish(status: str, **fields) -> Verification | None:
        mine.update(status=status, finished_at=timezone.now(), updated_at=timezone.now(), **fields)
        return Verification.objects.filter(pk=verification_id).first()

    def report(progress: downloader.Progress) -> bool:
        if on_progress is not None:
            on_progress(progress)
        return mine.update(bytes_done=progress.bytes_done, updated_at=timezone.now()) == 1

    try:
        algorithm, expected = _verify_expected(modelfile)
        path = cache.snapshot_blob(modelfile.repo, modelfile.filename, modelfile.snapshot)
        size = path.stat().st_size
        mine.update(algorithm=algorithm, expected=expected, bytes_total=size, updated_at=timezone.now())
        digests = downloader.hash_file(path, git=algorithm == downloader.VERIFIED_GIT_SHA1, report=report)
    except downloader.Stopped:
        return Verification.objects.filter(pk=verification_id).first()
    except hub.HubError as exc:
        return finish(Verification.Status.FAILED, error_message=f"Nothing to compare with: {exc.message}")
    except FileNotFoundError:
        return finish(Verification.Status.FAILED, error_message="The file is no longer in the cache; rescan.")
    except (OSError, cache.UnsafePath) as exc:
        return finish(Verification.Status.FAILED, error_message=f"The file cannot be read: {exc}")
    close_old_connections()
    actual = digests.sha256 if algorithm == downloader.VERIFIED_SHA256 else digests.git_sha1 or ""
    with transaction.atomic():
        if actual == expected:
            done = finish(Verification.Status.OK, actual=actual, bytes_done=size)
            # A blob that was corrupt and is whole again (put back by another tool) is ok again.
            _same_blob(modelfile).filter(state=CORRUPT).update(state="ok")
            return done
        done = finish(Verification.Status.CORRUPT, actual=actual, bytes_done=size)
        names = [_modelfile_name(row) for row in _same_blob(modelfile).filter(present=True)]
        _same_blob(modelfile).filter(present=True).update(state=CORRUPT)
        audit_record(actor=None, kind="modelfile", action="corrupt", object_id=modelfile.pk,
                     object_repr=_modelfile_name(modelfile), before={"state": modelfile.state},
                     after={"state": CORRUPT, "algorithm": algorithm, "expected": expected, "actual": actual,
                            "files": names})  # fmt: skip
    logger.warning("%s is corrupt: its %s is %s, expected %s", _modelfile_name(modelfile), algorithm, actual, expected)
    return done


def modelfile_repull(*, modelfile: ModelFile, by: AbstractBaseUser | None) -> tuple[Download, bool]:
    """Re-pull a corrupt file: the damaged blob and its snapshot link go, then the same commit is downloaded.

    The row then says the file is missing (not corrupt) until the download lands. Raises ValidationError when the
    file is not corrupt.
    """
    if modelfile.state != CORRUPT:
        raise ValidationError(f"{_modelfile_name(modelfile)} is not marked corrupt: nothing to re-pull.")
    if _elsewhere(modelfile):  # files per host: the damaged blob is on another host's disk
        raise ValidationError(str(ModelFileElsewhere(modelfile)).replace("deleted", "re-pulled"))
    paths = cache.RepoPaths.for_repo(modelfile.repo)
    link = paths.checked_snapshot_file(modelfile.snapshot, modelfile.filename)
    try:
        blob = cache.snapshot_blob(modelfile.repo, modelfile.filename, modelfile.snapshot)
    except FileNotFoundError:
        blob = None
    if blob is not None and blob.is_file():
        blob.unlink(missing_ok=True)
    link.unlink(missing_ok=True)
    with transaction.atomic():
        _same_blob(modelfile).filter(state=CORRUPT).update(state="ok")
        audit_record(actor=by, kind="modelfile", action="repull", object_id=modelfile.pk,
                     object_repr=_modelfile_name(modelfile), before={"state": CORRUPT},
                     after={"state": "missing", "blob_removed": blob is not None})  # fmt: skip
    modelfile_sync(repo=modelfile.repo, by=by)
    return download_request(repo=modelfile.repo, filename=modelfile.filename, revision=modelfile.snapshot, by=by,
                            host=_pull_host(modelfile))  # fmt: skip


# --- update check (issue 8, item 7) --------------------------------------------------------------------------------


class NoUpdate(Exception):
    def __init__(self, modelfile: ModelFile):
        self.modelfile = modelfile
        super().__init__(
            f"No update is known for {_modelfile_name(modelfile)}: check for updates first, or it is up to date."
        )


@dataclass(frozen=True)
class UpdateCheck:
    modelfile: ModelFile
    error: str = ""  # the Hub's answer when this file could not be checked

    @property
    def update_available(self) -> bool:
        return bool(self.modelfile.update_commit)


def _update_check_unreachable(problem: hub.HubError, *, timeout: float | None) -> str:
    # A check asked from a page is not retried by anyone: say what happened, what to check, and when the
    # periodic check runs, instead of the workers' "will try again".
    every = settings.CELERY_BEAT_SCHEDULE["check-updates"]["schedule"]
    reason = hub.unreachable_reason(problem, problem.__cause__, timeout=timeout or hub.METADATA_TIMEOUT)
    return (
        f"Could not check for updates: the Hub at HF_ENDPOINT ({hub.endpoint_shown()}) gave no usable answer "
        f"({reason}). Check HF_ENDPOINT and the network (and HF_TOKEN for private or gated repos); the periodic "
        f"check runs every {human_duration(every)} while a worker with its beat is up."
    )


def _update_candidates():
    # Only files pulled by a ref can have an update: a file pinned to a commit is the same forever.
    return [row for row in ModelFile.objects.filter(present=True).order_by("repo", "filename", "pk") if row.refs]


def modelfile_check_updates(*, by: AbstractBaseUser | None = None, timeout: float | None = None) -> list[UpdateCheck]:
    """Ask the Hub, for each file held by a ref, where that ref points now and whether the file changed there.

    A moved ref with other bytes for the file (another etag) is stored on the row as "update available"; a moved
    ref with the same bytes, or an unmoved one, clears it. When the Hub cannot be reached the check stops there
    (every further file would wait for the same timeout) and says so.
    """
    results: list[UpdateCheck] = []
    unreachable = ""
    for modelfile in _update_candidates():
        if unreachable:
            results.append(UpdateCheck(modelfile, unreachable))
            continue
        found: hub.RemoteFile | None = None
        error = ""
        for ref in sorted(modelfile.refs):
            try:
                remote = hub.file_metadata(modelfile.repo, modelfile.filename, ref, timeout=timeout)
            except hub.HubError as exc:
                error = exc.message
                if exc.transient:
                    unreachable = _update_check_unreachable(exc, timeout=timeout)
                    break
                continue
            if remote.commit != modelfile.snapshot and remote.etag != modelfile.etag:
                found = remote
                break
        if unreachable:
            results.append(UpdateCheck(modelfile, unreachable))
            continue
        values = {"update_checked_at": timezone.now(), "update_ref": "", "update_commit": "", "update_etag": "",
                  "update_size": None}  # fmt: skip
        if found is not None:
            values.update(update_ref=found.revision, update_commit=found.commit, update_etag=found.etag,
                          update_size=found.size)  # fmt: skip
            error = ""
        ModelFile.objects.filter(pk=modelfile.pk).update(**values)
        for name, value in values.items():
            setattr(modelfile, name, value)
        results.append(UpdateCheck(modelfile, error))
    updates = [result.modelfile for result in results if result.update_available]
    if updates:
        names = [f"{_modelfile_name(row)} -> {row.update_commit}" for row in updates]
        audit_record(actor=by, kind="modelfile", action="check_updates", object_repr="update check",
                     after={"updates": names})  # fmt: skip
    return results


@transaction.atomic
def modelfile_update(*, modelfile: ModelFile, by: AbstractBaseUser | None) -> tuple[Download | None, bool]:
    """Pull the update the check found: the new commit is downloaded (and verified, as every download), then the
    ref moves to it (see modelfile_ref_move). (download, created); download None when the new commit was already
    local and only the ref had to move. Raises NoUpdate when no update is stored for the file."""
    modelfile = ModelFile.objects.select_for_update().get(pk=modelfile.pk)
    if not modelfile.update_commit:
        raise NoUpdate(modelfile)
    ref, commit = modelfile.update_ref, modelfile.update_commit
    audit_record(actor=by, kind="modelfile", action="update", object_id=modelfile.pk,
                 object_repr=_modelfile_name(modelfile), before={"snapshot": modelfile.snapshot, "ref": ref},
                 after={"snapshot": commit, "ref": ref})  # fmt: skip
    try:
        # By the commit, not the ref: the ref still points at the old snapshot locally, so asking for it would
        # answer AlreadyLocal. The task is enqueued on commit, after moves_ref below is set.
        download, created = download_request(
            repo=modelfile.repo, filename=modelfile.filename, revision=commit, by=by, host=_pull_host(modelfile)
        )
    except AlreadyLocal:
        modelfile_ref_move(repo=modelfile.repo, filename=modelfile.filename, ref=ref, commit=commit)
        transaction.on_commit(lambda: modelfile_sync(repo=modelfile.repo), robust=True)
        return None, False
    Download.objects.filter(pk=download.pk).update(moves_ref=ref)
    download.moves_ref = ref
    return download, created


def modelfile_ref_move(*, repo: str, filename: str, ref: str, commit: str) -> None:
    """Point the local ref at the new commit once its file is in the cache, verified.

    Aliases that name the ref follow it (they resolve it when used; the generated alias follows `main` at the next
    sync); aliases pinned to the old commit keep it, and its snapshot stays. The ref covers the whole repo: the
    other files of the old snapshot whose bytes did not change at the new commit are linked into the new snapshot
    (no download), so moving it takes nothing away from them.
    """
    old = cache.resolve_revision(repo, ref)
    if old != commit:
        if old is not None:
            _carry_over(repo=repo, filename=filename, ref=ref, old=old, commit=commit)
        cache.write_ref(repo, ref, commit)
        audit_record(actor=None, kind="modelfile", action="ref_move", object_id=repo, object_repr=f"{repo}@{ref}",
                     before={"commit": old}, after={"commit": commit})  # fmt: skip
    # This file's update is done (also when another file's update already moved the ref).
    # Files per host: the ref moved in this cache; another host's copy keeps its own "update available".
    _here().filter(repo=repo, filename=filename, update_ref=ref, update_commit=commit).update(
        update_ref="", update_commit="", update_etag="", update_size=None
    )


def _carry_over(*, repo: str, filename: str, ref: str, old: str, commit: str) -> None:
    """The other files of the old snapshot, as the ref moves: the unchanged ones are linked into the new snapshot;
    the changed ones get "update available" for the new commit, so their own Update brings them along."""
    paths = cache.RepoPaths.for_repo(repo)
    for other in _here().filter(repo=repo, snapshot=old, present=True).exclude(filename=filename):
        if not other.etag or cache.local_file(repo, other.filename, commit) is not None:
            continue
        try:
            remote = hub.file_metadata(repo, other.filename, commit)
        except hub.HubError as exc:
            logger.info("update of %s: %s stays at %s (%s)", repo, other.filename, old[:8], exc.message)
            continue
        blob = paths.blob(other.etag)
        if remote.etag == other.etag and blob.is_file():
            cache.publish(repo=repo, filename=other.filename, revision=commit, commit=commit, etag=other.etag,
                          verified_file=blob)  # fmt: skip
        elif remote.etag != other.etag:
            ModelFile.objects.filter(pk=other.pk).update(
                update_ref=ref,
                update_commit=commit,
                update_etag=remote.etag,
                update_size=remote.size,
                update_checked_at=timezone.now(),
            )


# --- files per host (issue 8, item 10) -------------------------------------------------------------------------------

# A location's last_seen_at is written at most this often by the scans (an unchanged rescan stays one read).
LOCATION_SEEN_EVERY_SECONDS = 60.0


def location_current() -> Location:
    """The Location row of the cache this process reads (created on its first scan), its path and time seen kept."""
    found = location.cache_location()
    now = timezone.now()
    row = Location.objects.filter(key=found.key).first()
    if row is None:
        try:
            with transaction.atomic():
                return Location.objects.create(
                    key=found.key, name=found.created_by or location.current_host(), path=found.path, last_seen_at=now
                )
        except IntegrityError:  # another process sharing the cache created it first
            row = Location.objects.get(key=found.key)
    stale = row.last_seen_at is None or (now - row.last_seen_at).total_seconds() > LOCATION_SEEN_EVERY_SECONDS
    if row.path != found.path or stale:
        Location.objects.filter(pk=row.pk).update(path=found.path, last_seen_at=now)
        row.path, row.last_seen_at = found.path, now
    return row


@transaction.atomic
def location_register_worker(*, host: str) -> Location:
    """A worker started on `host` with this process's cache: the host is listed on that location (and taken off any
    other it was listed on, as a host name stands for one worker cache); pulls aimed at it go to its queue."""
    here = location_current()
    here = Location.objects.select_for_update().get(pk=here.pk)
    # A few rows: compared here, as a JSON "contains" lookup is not available on SQLite.
    for other in Location.objects.select_for_update().exclude(pk=here.pk):
        if host in (other.hosts or []):
            Location.objects.filter(pk=other.pk).update(hosts=[name for name in other.hosts if name != host])
    if host not in (here.hosts or []):
        here.hosts = sorted({*(here.hosts or []), host})
        Location.objects.filter(pk=here.pk).update(hosts=here.hosts)
    return here


def pull_target(*, host: str) -> Location | None:
    """The location a pull aimed at `host` lands in; None for the shared queue (host empty). Raises
    ValidationError on `host` when no worker of that name has started (its queue would never be read)."""
    if not host:
        return None
    target = location_of_host(host)
    if target is None:
        known = ", ".join(location_hosts()) or "none yet"
        raise ValidationError(
            {"host": [f"No worker has started on host {host!r}; known hosts: {known}. Leave it empty for any."]}
        )
    return target


def _held_at(target: Location, *, repo: str, filename: str, revision: str) -> ModelFile | None:
    """The row of a file another location holds for the revision (by commit, or a ref of its snapshot)."""
    rows = ModelFile.objects.filter(location=target, repo=repo, filename=filename, present=True).order_by("pk")
    return next((row for row in rows if revision == row.snapshot or revision in (row.refs or ())), None)


def _elsewhere(modelfile: ModelFile) -> bool:
    """True when the file is in another location's cache than the one this process reads."""
    return modelfile.location is not None and modelfile.location.key != location.cache_location().key


def _pull_host(modelfile: ModelFile) -> str:
    """The host a pull for this file's own cache (an update, a re-pull) is aimed at: one of its location's worker
    hosts, or none (the shared queue) when there is only one worker host anyway or the location has no worker."""
    hosts = sorted(modelfile.location.hosts or ()) if modelfile.location is not None else []
    if not hosts or len(location_hosts()) <= 1:
        return ""
    return hosts[0]


def _here():
    """The rows of this process's cache (and rows no scan has claimed yet), for work done on this disk."""
    return ModelFile.objects.filter(Q(location__key=location.cache_location().key) | Q(location__isnull=True))


def modelfile_sync_elsewhere() -> int:
    """Ask a worker of every other location to scan its cache (this process can scan only its own): one scan task
    on each location's queue. Answers how many were sent; a broker that cannot be reached sends none (logged)."""
    from modelfiles.tasks import scan_cache_task

    here = location.cache_location().key
    # Expires: a location whose workers are all stopped does not pile up scans to run at once on their return.
    every = settings.CELERY_BEAT_SCHEDULE["scan-cache"]["schedule"]
    sent = 0
    for key, hosts in Location.objects.exclude(key=here).order_by("pk").values_list("key", "hosts"):
        if not hosts:
            continue  # no worker reads that cache (a web machine's own, say): nobody would take the scan
        try:
            scan_cache_task.apply_async((False,), queue=location.location_queue(key), expires=every)
        except Exception as exc:  # the broker is down: the next periodic scan asks again
            logger.warning("could not ask the other hosts to rescan (%s)", exc)
            break
        sent += 1
    return sent
