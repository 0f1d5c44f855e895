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
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from aliases.services import LocalModelFile, alias_sync_model_files
from aliases.validators import segment_too_long, validate_filename, validate_repo, validate_snapshot
from modelfiles import cache, downloader, hub
from modelfiles.models import Download, ModelFile

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = int(os.environ.get("MODELDESK_MAX_ATTEMPTS", "8"))
RETRY_BASE_SECONDS = float(os.environ.get("MODELDESK_RETRY_BASE_SECONDS", "1"))
RETRY_CAP_SECONDS = float(os.environ.get("MODELDESK_RETRY_CAP_SECONDS", "30"))
# A running download whose heartbeat is older than this is taken to have lost its worker.
STALE_SECONDS = float(os.environ.get("MODELDESK_STALE_SECONDS", "60"))


class AlreadyLocal(Exception):
    def __init__(self, path: Path, modelfile: ModelFile | None):
        self.path = path
        self.modelfile = modelfile
        super().__init__("This file is already in the local cache for that revision; nothing to download.")


def _user(by: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return by if by is not None and by.is_authenticated else None


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


def _enqueue(download_id: uuid.UUID) -> None:
    from modelfiles.tasks import download_task

    transaction.on_commit(lambda: download_task.delay(str(download_id)))


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
                _enqueue(download.pk)
            return download, True
        except IntegrityError:
            # Another request for the same file won the one-active-download constraint; return its row.
            continue
    raise RuntimeError("Could not queue the download; try again.")


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
            )
            if changed:
                _enqueue(download.pk)
    except IntegrityError:
        # A newer request for the same file is already active: that one is the download to watch.
        active = _active(download.repo, download.filename, download.revision)
        if active is not None:
            return active, False
        raise
    download.refresh_from_db()
    return download, bool(changed)


def download_requeue_stale(*, older_than: float = STALE_SECONDS, worker: str | None = None) -> int:
    """Re-queue running downloads whose worker died: heartbeat older than `older_than` s, or owned by `worker`
    (a worker that is starting again under the same name cannot still be running its old downloads)."""
    rows = Download.objects.filter(status__in=Download.RUNNING)
    if worker is not None:
        rows = rows.filter(worker=worker)
    else:
        rows = rows.filter(updated_at__lt=timezone.now() - timedelta(seconds=older_than))
    requeued = 0
    for download_id in list(rows.values_list("pk", flat=True)):
        with transaction.atomic():
            changed = Download.objects.filter(pk=download_id, status__in=Download.RUNNING).update(
                status=Download.Status.QUEUED,
                claim=None,
                speed=None,
                eta=None,
                updated_at=timezone.now(),
                error_message="The worker stopped answering; queued again to resume.",
            )
            if changed:
                _enqueue(download_id)
                requeued += changed
    if requeued:
        logger.warning("re-queued %s download(s) whose worker stopped", requeued)
    return requeued


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
            if not claim.update(commit=remote.commit, etag=remote.etag[:64], bytes_total=remote.size):
                return _reload(download)
            started = time.monotonic()
            downloader.fetch(remote, report=report, thread_exit=close_thread_connection)
            seconds = time.monotonic() - started
            logger.info(
                "download %s: %s/%s verified and in the cache; metadata %.2f s, transfer %.2f s (%.0f MB/s)",
                download.pk, download.repo, download.filename, started - asked, seconds,
                (remote.size or 0) / max(seconds, 1e-6) / 1e6,
            )  # fmt: skip
            close_old_connections()
            claim.finish(
                Download.Status.COMPLETED,
                bytes_done=remote.size or F("bytes_done"),
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


@transaction.atomic
def modelfile_sync(*, repo: str | None = None) -> dict[str, int]:
    """Bring ModelFile rows in step with the cache (all repos, or one): new files appear, gone ones vanish."""
    found = {(item.repo, item.filename, item.snapshot): item for item in cache.scan_gguf(repo=repo)}
    rows = ModelFile.objects.select_for_update()
    if repo is not None:
        rows = rows.filter(repo=repo)
    existing = {(row.repo, row.filename, row.snapshot): row for row in rows}
    created = updated = removed = 0
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
            ModelFile.objects.create(repo=item.repo, filename=item.filename, snapshot=item.snapshot, **fields)
            created += 1
        elif any(getattr(row, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(row, name, value)
            row.save()
            updated += 1
    gone = [row.pk for key, row in existing.items() if key not in found and row.present]
    if gone:
        removed = ModelFile.objects.filter(pk__in=gone).update(present=False)
    alias_sync_model_files(
        files=[LocalModelFile(item.repo, item.filename, item.snapshot, item.refs) for item in found.values()],
        repo=repo,
    )
    return {"created": created, "updated": updated, "removed": removed, "present": len(found)}
