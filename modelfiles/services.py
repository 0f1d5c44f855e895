"""Every write to model files and downloads: pages, the API, commands and tasks call these functions."""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from aliases.models import Alias
from aliases.services import LocalModelFile, alias_sync_model_files, model_alias_name
from aliases.validators import segment_too_long, validate_filename, validate_repo, validate_snapshot
from config.audit.services import audit_record
from modelfiles import cache, downloader, hub
from modelfiles.models import CacheScan, Download, ModelFile

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
    def __init__(self, path: Path, modelfile: ModelFile | None):
        self.path = path
        self.modelfile = modelfile
        super().__init__("This file is already in the local cache for that revision; nothing to download.")


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


def download_publish(*, download_id: uuid.UUID | str) -> bool:
    """Hand a queued download's task to the broker and note when; False (logged) when the broker is unreachable.

    Never raises: the row is already committed and stays queued, and `download_reconcile` sends it later. The
    broker settings bound how long this may take (CELERY_TASK_PUBLISH_RETRY_POLICY and the broker timeouts).
    """
    from modelfiles.tasks import download_task

    try:
        download_task.delay(str(download_id))
    except Exception as exc:  # kombu OperationalError, redis-py errors, OSError from the on-disk broker...
        logger.warning(
            "download %s: the task queue is unreachable (%s); it stays queued and is sent later", download_id, exc
        )
        return False
    # Only while still queued: a worker may already have claimed it, and then the time no longer matters.
    Download.objects.filter(pk=download_id, status=Download.Status.QUEUED).update(enqueued_at=timezone.now())
    return True


def _enqueue(download_id: uuid.UUID) -> None:
    # robust: a failing callback must not turn the request into a 500 after the row was committed.
    transaction.on_commit(lambda: download_publish(download_id=download_id), robust=True)


def _active(repo: str, filename: str, revision: str) -> Download | None:
    return Download.objects.filter(repo=repo, filename=filename, revision=revision, status__in=Download.ACTIVE).first()


def download_request(
    *, repo: str, filename: str, revision: str = "main", by: AbstractBaseUser | None
) -> tuple[Download, bool]:
    """Queue a pull, or return the active one for the same file: (download, created).

    Raises ValidationError for a bad repo/filename/revision and AlreadyLocal when the cache already holds the file
    for that revision (a local check: the answer never waits for the Hub).
    """
    pull_validate(repo=repo, filename=filename, revision=revision)
    path = cache.local_file(repo, filename, revision)
    if path is not None:
        commit = cache.resolve_revision(repo, revision)
        raise AlreadyLocal(path, ModelFile.objects.filter(repo=repo, filename=filename, snapshot=commit).first())
    for _ in range(3):
        existing = _active(repo, filename, revision)
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                download = Download.objects.create(
                    repo=repo, filename=filename, revision=revision, requested_by=_user(by)
                )
                _audit_download(download=download, action="request", by=by, status=download.status)
                _enqueue(download.pk)
            # The task was handed over on commit (or not, if the broker is down): say which.
            download.refresh_from_db(fields=["status", "enqueued_at"])
            return download, True
        except IntegrityError:
            # Another request for the same file won the one-active-download constraint; return its row.
            continue
    raise RuntimeError("Could not queue the download; try again.")


@transaction.atomic
def download_cancel(*, download: Download, by: AbstractBaseUser | None) -> bool:
    """Cancel an active download; its worker sees it within about a second and keeps the partial file."""
    who = by.get_username() if by is not None and by.is_authenticated else "the system"
    changed = Download.objects.filter(pk=download.pk, status__in=Download.ACTIVE).update(
        status=Download.Status.CANCELLED,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
        speed=None,
        eta=None,
        claim=None,
        error_code="cancelled",
        error_message=f"Cancelled by {who}. Retry continues from the bytes already fetched.",
    )
    if changed:
        _audit_download(download=download, action="cancel", by=by, status=Download.Status.CANCELLED)
    return changed == 1


def download_retry(*, download: Download, by: AbstractBaseUser | None) -> tuple[Download, bool]:
    """Re-queue a failed or cancelled download (it resumes its partial file): (download, requeued)."""
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
            )
            if changed:
                _audit_download(download=download, action="retry", by=by, status=Download.Status.QUEUED)
                _enqueue(download.pk)
    except IntegrityError:
        # A newer request for the same file is already active: that one is the download to watch.
        active = _active(download.repo, download.filename, download.revision)
        if active is not None:
            return active, False
        raise
    download.refresh_from_db()
    return download, bool(changed)


def download_requeue_stale(
    *, older_than: float = STALE_SECONDS, worker: str | None = None, download_id: uuid.UUID | str | None = None
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
    for stale_id in list(rows.values_list("pk", flat=True)):
        with transaction.atomic():
            changed = Download.objects.filter(pk=stale_id, status__in=Download.RUNNING).update(
                status=Download.Status.QUEUED,
                claim=None,
                speed=None,
                eta=None,
                enqueued_at=None,
                updated_at=timezone.now(),
                error_message="The worker stopped answering; queued again to resume.",
            )
            if changed:
                _enqueue(stale_id)
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
    for download_id, previous in list(rows.order_by("created_at", "pk").values_list("pk", "enqueued_at")):
        # Take the row for this run first (a conditional UPDATE): the beat and workers starting at the same
        # moment reconcile together, and only one of them sends it.
        mine = Download.objects.filter(pk=download_id, status=Download.Status.QUEUED)
        mine = mine.filter(enqueued_at__isnull=True) if previous is None else mine.filter(enqueued_at=previous)
        taken_at = timezone.now()
        if not mine.update(enqueued_at=taken_at):
            continue
        if not download_publish(download_id=download_id):
            # Give it back as it was (the note shows again), unless something else changed it meanwhile.
            Download.objects.filter(pk=download_id, enqueued_at=taken_at).update(enqueued_at=previous)
            break  # still unreachable: the next run tries again, no need to wait for a timeout per row
        sent += 1
    if sent:
        logger.warning("sent %s queued download(s) again that no worker had been told of", sent)
    return sent


@dataclass
class _Claim:
    download_id: uuid.UUID
    token: uuid.UUID

    def rows(self):
        return Download.objects.filter(pk=self.download_id, claim=self.token, status__in=Download.RUNNING)

    def update(self, **fields) -> bool:
        return self.rows().update(updated_at=timezone.now(), **fields) == 1

    def finish(self, status: str, **fields) -> bool:
        return self.update(status=status, finished_at=timezone.now(), speed=None, eta=None, **fields)


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


def download_run(
    *, download_id: str | uuid.UUID, worker: str = "", on_progress: Callable[[downloader.Progress], None] | None = None
) -> Download | None:
    """Run one queued download to its end. Claims the row first; does nothing if it is not queued any more.

    Transient faults are retried here with backoff and jitter, each attempt resuming the partial file;
    permanent ones fail the row with a message that says what to do.
    """
    token = uuid.uuid4()
    claimed = Download.objects.filter(pk=download_id, status=Download.Status.QUEUED).update(
        status=Download.Status.DOWNLOADING,
        claim=token,
        worker=worker[:255],
        started_at=Coalesce(F("started_at"), timezone.now()),
        updated_at=timezone.now(),
        attempts=F("attempts") + 1,
        error_code="",
        verified="",
    )
    if not claimed:
        return None  # already claimed, finished, cancelled or gone: running twice has one effect
    download = Download.objects.get(pk=download_id)
    claim = _Claim(download.pk, token)

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

    attempt = 1
    while True:
        try:
            asked = time.monotonic()
            remote = hub.file_metadata(download.repo, download.filename, download.revision)
            if not claim.update(commit=remote.commit, etag=remote.etag, bytes_total=remote.size):
                return _reload(download)
            started = time.monotonic()
            fetched = downloader.fetch(remote, report=report, thread_exit=close_thread_connection)
            seconds = time.monotonic() - started
            logger.info(
                "download %s: %s/%s %s verified and in the cache; metadata %.2f s, transfer %.2f s (%.0f MB/s)",
                download.pk, download.repo, download.filename, fetched.verified, started - asked, seconds,
                (remote.size or 0) / max(seconds, 1e-6) / 1e6,
            )  # fmt: skip
            close_old_connections()
            claim.finish(
                Download.Status.COMPLETED,
                bytes_done=remote.size or F("bytes_done"),
                verified=fetched.verified,
                error_code="",
                error_message="",
            )
            modelfile_sync(repo=download.repo)
            return _reload(download)
        except downloader.Stopped:
            return _reload(download)  # cancelled, or another worker took it over: the row already says so
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
            if not claim.update(
                error_code=error.code,
                error_message=f"{error.message} (attempt {attempt} of {MAX_ATTEMPTS}, next in {delay:.0f} s)",
                speed=None,
                eta=None,
            ):
                return _reload(download)
            if not _wait(claim, delay):
                return _reload(download)
            attempt += 1
            Download.objects.filter(pk=download.pk, claim=token).update(attempts=F("attempts") + 1)
        except Exception:
            logger.exception("download %s failed unexpectedly", download.pk)
            claim.finish(
                Download.Status.FAILED,
                error_code="internal_error",
                error_message="An unexpected error stopped the download; the worker log has the details. Retry "
                "continues from the bytes already fetched.",
            )
            return _reload(download)


def _reload(download: Download) -> Download | None:
    return Download.objects.filter(pk=download.pk).first()


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
        alias.full_clean(validate_unique=False, validate_constraints=False)
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


@transaction.atomic
def modelfile_sync(*, repo: str | None = None, by: AbstractBaseUser | None = None) -> dict:
    """Bring ModelFile rows in step with the cache (all repos, or one): new files appear, gone ones vanish.

    An entry that cannot be listed (an odd or undecodable name, a broken link, a missing blob, a folder that is
    not a commit or a repo id) is skipped and reported; the rest lands. The answer, also kept as the latest
    CacheScan: {"created", "updated", "removed", "present", "skipped": [{"path", "reason"}]}.
    """
    scan = cache.scan_gguf(repo=repo)
    skipped = list(scan.skipped)
    found: dict[tuple[str, str, str], cache.CachedGguf] = {}
    seen: dict[tuple[str, str], str | None] = {}
    for item in scan.files:
        problem = _modelfile_problem(item, seen=seen)
        if problem:
            skipped.append(cache.Skipped(item.path, problem))
        else:
            found[(item.repo, item.filename, item.snapshot)] = item
    if skipped:
        logger.warning("cache scan skipped %s entr%s", len(skipped), "y" if len(skipped) == 1 else "ies")
    counts, existing, gone = _modelfile_rows_sync(repo=repo, found=found)
    alias_sync_model_files(
        files=[LocalModelFile(item.repo, item.filename, item.snapshot, item.refs) for item in found.values()],
        repo=repo,
        validated=True,  # _modelfile_problem ran the alias rules on every file in `found`
    )
    _audit_scan(repo=repo, found=found, existing=existing, gone=gone, updated=counts["updated"], by=by)
    _scan_report_save(repo=repo, counts=counts, skipped=skipped)
    return {**counts, "skipped": [entry.as_dict() for entry in skipped]}


# Rows per INSERT / UPDATE statement of the sync.
SYNC_BATCH = 500
_SYNCED_FIELDS = ("refs", "size", "etag", "modified_at", "present")


@dataclass(frozen=True)
class _StoredFile:
    """What the sync compares of a stored row: read as plain values, not as model instances."""

    pk: int
    refs: list
    size: int
    etag: str
    modified_at: object
    present: bool


def _modelfile_rows_sync(
    *, repo: str | None, found: dict[tuple[str, str, str], cache.CachedGguf]
) -> tuple[dict[str, int], dict[tuple[str, str, str], _StoredFile], list[int]]:
    """The ModelFile rows brought in step with `found`: one query reads the stored rows (locked), then batched
    INSERTs for new files, batched UPDATEs for changed ones and one UPDATE marks the vanished ones gone.

    Answers the counts, the stored rows as they were ({key: row}) and the primary keys of the rows marked gone.
    """
    rows = ModelFile.objects.select_for_update()
    if repo is not None:
        rows = rows.filter(repo=repo)
    existing = {
        (row_repo, filename, snapshot): _StoredFile(*values)
        for row_repo, filename, snapshot, *values in rows.values_list(
            "repo", "filename", "snapshot", "pk", *_SYNCED_FIELDS
        )
    }
    now = timezone.now()
    new: list[ModelFile] = []
    changed: list[ModelFile] = []
    for key, item in found.items():
        fields = {
            "refs": list(item.refs),
            "size": item.size,
            "etag": item.etag,
            "modified_at": item.modified_at,
            "present": True,
        }
        row = existing.get(key)
        if row is None:
            new.append(ModelFile(repo=item.repo, filename=item.filename, snapshot=item.snapshot, **fields))
        elif any(getattr(row, name) != value for name, value in fields.items()):
            # bulk_update does not apply auto_now: scanned_at is set here, as save() would.
            changed.append(ModelFile(pk=row.pk, scanned_at=now, **fields))
    ModelFile.objects.bulk_create(new, batch_size=SYNC_BATCH)
    ModelFile.objects.bulk_update(changed, [*_SYNCED_FIELDS, "scanned_at"], batch_size=SYNC_BATCH)
    gone = [row.pk for key, row in existing.items() if key not in found and row.present]
    removed = 0
    for start in range(0, len(gone), SYNC_BATCH):
        removed += ModelFile.objects.filter(pk__in=gone[start : start + SYNC_BATCH]).update(present=False)
    counts = {"created": len(new), "updated": len(changed), "removed": removed, "present": len(found)}
    return counts, existing, gone
