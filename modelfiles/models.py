from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from modelfiles.live import downloads_changed


class Location(models.Model):
    """One Hugging Face cache folder: a host's own, or a volume several hosts share (modelfiles/location.py).

    Its key is read from a marker file inside the cache folder, so hosts that mount one volume are one location
    and workers on one machine with different HF_HOMEs are two.
    """

    key = models.CharField(max_length=64, unique=True, help_text="The key in the cache folder's marker file.")
    name = models.CharField(max_length=255, help_text="The host that first scanned it.")
    hosts = models.JSONField(default=list, blank=True, help_text="The worker hosts (MODELDESK_HOST) that use it.")
    path = models.CharField(max_length=1024, blank=True, help_text="The cache folder as its last scanner saw it.")
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="Its last scan.")

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """What pages call it: its host, or the hosts sharing it."""
        hosts = sorted(self.hosts or ())
        if len(hosts) > 1:
            return f"shared: {', '.join(hosts)}"
        return hosts[0] if hosts else self.name


class ModelFile(models.Model):
    """One GGUF file in one cached snapshot of the Hugging Face cache, kept in step by the cache scanner."""

    # Which cache holds it. Empty only for rows from before hosts were known; the first scan adopts them.
    # No index of its own: the unique constraint below starts with it.
    location = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="files",
        db_index=False,
        help_text="Where it is.",
    )
    repo = models.CharField(max_length=96)
    filename = models.CharField(max_length=255)
    snapshot = models.CharField(max_length=40, help_text="The commit the snapshot folder is named after.")
    refs = models.JSONField(default=list, blank=True, help_text="Branches and tags pointing at this snapshot.")
    size = models.BigIntegerField()
    etag = models.CharField(max_length=64, help_text="Blob name; the sha256 for LFS files.")
    modified_at = models.DateTimeField()
    present = models.BooleanField(default=True, help_text="False once the file has gone from the cache.")
    scanned_at = models.DateTimeField(auto_now=True)
    # The update check (item 7): what the Hub's ref points at now, when that commit holds other bytes for this file.
    update_ref = models.CharField(max_length=128, blank=True, help_text="The ref whose commit moved on the Hub.")
    update_commit = models.CharField(max_length=40, blank=True, help_text="The commit the ref points at on the Hub.")
    update_etag = models.CharField(max_length=64, blank=True)
    update_size = models.BigIntegerField(null=True, blank=True)
    update_checked_at = models.DateTimeField(null=True, blank=True, help_text="When the Hub was last asked.")

    # --- what the file says about itself (modelfiles/gguf_header.py), and whether it can load ---------------------
    class State(models.TextChoices):
        OK = "ok"
        INCOMPLETE = "incomplete", "incomplete (parts of its split set missing or damaged)"
        CORRUPT = "corrupt"
        UNREADABLE = "unreadable", "unreadable (no GGUF header could be read)"

    state = models.CharField(max_length=12, choices=State.choices, default=State.OK)
    gguf_read_key = models.CharField(
        max_length=100, blank=True, help_text="The blob (name and size) the metadata was read from; empty: not read."
    )
    gguf_error = models.CharField(max_length=255, blank=True, help_text="Why the header says the file cannot load.")
    gguf_architecture = models.CharField(max_length=64, blank=True)
    gguf_name = models.CharField(max_length=255, blank=True)
    gguf_parameters = models.BigIntegerField(null=True, blank=True, help_text="Weights in this file.")
    gguf_size_label = models.CharField(max_length=32, blank=True)
    gguf_quantization = models.CharField(max_length=32, blank=True, help_text="The file type, e.g. Q4_K_M.")
    gguf_context_length = models.BigIntegerField(null=True, blank=True)
    gguf_embedding_length = models.BigIntegerField(null=True, blank=True)
    gguf_block_count = models.BigIntegerField(null=True, blank=True)
    gguf_tokenizer_model = models.CharField(max_length=64, blank=True)
    gguf_chat_template = models.TextField(blank=True, help_text="Empty when the file embeds none.")
    split_no = models.PositiveIntegerField(null=True, blank=True, help_text="Part number (from 1) in a split set.")
    split_count = models.PositiveIntegerField(null=True, blank=True, help_text="Parts in its split set.")
    split_present = models.PositiveIntegerField(null=True, blank=True, help_text="Parts of the set in this snapshot.")
    split_total_size = models.BigIntegerField(null=True, blank=True, help_text="Bytes of the set's local parts.")

    class Meta:
        ordering = ["repo", "filename", "snapshot", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["location", "repo", "filename", "snapshot"], name="modelfile_unique_per_location_snapshot"
            ),
        ]
        indexes = [models.Index(fields=["present", "repo"], name="modelfile_present_repo")]
        permissions = [
            ("rescan_cache", "Can rescan the model cache"),
            ("verify_modelfile", "Can verify a model file"),
        ]

    def __str__(self) -> str:
        return f"{self.repo}/{self.filename}@{self.snapshot[:8]}"

    @property
    def is_split(self) -> bool:
        return bool(self.split_count)

    @property
    def can_load(self) -> bool:
        """What llama.cpp needs: a readable, complete file (every part of a split set), opened by its first part."""
        return self.state == self.State.OK and (not self.split_count or self.split_no == 1)


class DownloadQuerySet(models.QuerySet):
    """Writes in bulk mark the rows changed for the live pages (modelfiles/live.py); a row's own save or delete
    does through the signals connected in modelfiles/apps.py."""

    def update(self, **kwargs):
        changed = super().update(**kwargs)
        if changed:
            downloads_changed()
        return changed

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        downloads_changed()
        return created


class Download(models.Model):
    """One pull request; the source of truth for its state (never a Celery result backend)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        DOWNLOADING = "downloading"
        VERIFYING = "verifying"
        PAUSED = "paused"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # Paused is active: it holds its partial file and its place, and a second request for the file gets it back.
    ACTIVE = (Status.QUEUED, Status.DOWNLOADING, Status.VERIFYING, Status.PAUSED)
    RUNNING = (Status.DOWNLOADING, Status.VERIFYING)
    RETRYABLE = (Status.FAILED, Status.CANCELLED)
    PAUSABLE = (Status.QUEUED, Status.DOWNLOADING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.CharField(max_length=96)
    filename = models.CharField(max_length=255)
    revision = models.CharField(max_length=128, default="main", help_text="As asked: a branch, tag or commit.")
    commit = models.CharField(max_length=40, blank=True, help_text="The commit the revision resolved to.")
    etag = models.CharField(max_length=64, blank=True)
    verified = models.CharField(
        max_length=16,
        blank=True,
        choices=[("sha256", "sha256"), ("git-sha1", "git blob sha1")],
        help_text="The hash compared with the Hub's before the file became visible (empty until completed).",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    speed = models.FloatField(null=True, blank=True, help_text="Bytes per second, averaged over recent seconds.")
    eta = models.FloatField(null=True, blank=True, help_text="Seconds left at the current speed.")
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Tries started since it was asked for or retried; a try stopped by a pause is not one."
    )
    retry_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set while it waits to retry after a transient fault: when the next try starts.",
    )
    claim = models.UUIDField(null=True, blank=True, help_text="Set by the worker that holds the download.")
    worker = models.CharField(max_length=255, blank=True)
    enqueued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its task was last handed to the broker; empty while queued means no worker has been told.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="The heartbeat while downloading.")
    moves_ref = models.CharField(
        max_length=128, blank=True, help_text="An update: once completed, this ref is pointed at the commit."
    )
    # A split model (`x-00001-of-00003.gguf`) is one download of all its parts: `filename` names part 1, so the
    # one-active constraint covers a request for any part; bytes_total/bytes_done count the whole set.
    parts = models.PositiveSmallIntegerField(default=1, help_text="Files in the set: more than 1 for a split model.")
    part = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The part being fetched (from 1).")
    host = models.CharField(
        max_length=63, blank=True, help_text="The worker host the pull is aimed at; empty: any worker (shared queue)."
    )
    notice_pending = models.BooleanField(
        default=False, help_text="It completed or failed and whoever asked for it has not been told yet."
    )

    # --- queue order and limits (issue 11, item 3) ----------------------------------------------------------------
    class Priority(models.IntegerChoices):
        HIGH = 1, "high"
        NORMAL = 0, "normal"
        LOW = -1, "low"

    priority = models.SmallIntegerField(
        choices=Priority.choices, default=Priority.NORMAL, help_text="Queued downloads start highest priority first."
    )
    position = models.IntegerField(
        null=True,
        blank=True,
        help_text="Its place as operators ordered the queue (1 first); empty: not moved, after the moved ones, "
        "in request order.",
    )
    max_speed = models.BigIntegerField(
        null=True, blank=True, help_text="Its own bandwidth limit in bytes per second; empty: only the global one."
    )

    objects = DownloadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One active download per file and revision as asked: a second request gets the first.
            # Per target host: a pull aimed at host B is not the one already running on host A.
            models.UniqueConstraint(
                fields=["repo", "filename", "revision", "host"],
                condition=Q(status__in=["queued", "downloading", "verifying", "paused"]),
                name="download_one_active_per_file_host",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["queued", "downloading", "verifying", "paused", "completed", "failed", "cancelled"]
                ),
                name="download_status_valid",
            ),
            models.CheckConstraint(condition=Q(bytes_done__gte=0), name="download_bytes_done_positive"),
            models.CheckConstraint(condition=Q(priority__in=[-1, 0, 1]), name="download_priority_valid"),
            models.CheckConstraint(
                condition=Q(max_speed__isnull=True) | Q(max_speed__gt=0), name="download_max_speed_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="download_status_heartbeat"),
            models.Index(fields=["created_at"], name="download_created_at"),
            # Every page a signed-in person opens asks for their pending notices: a small index of only those.
            models.Index(fields=["requested_by"], condition=Q(notice_pending=True), name="download_notice_pending"),
        ]
        permissions = [
            ("request_download", "Can request a download"),
            ("cancel_download", "Can cancel a download"),
            ("retry_download", "Can retry a download"),
            ("pause_download", "Can pause and resume a download"),
        ]

    def __str__(self) -> str:
        return f"{self.repo}/{self.filename}@{self.revision} ({self.status})"

    # The order queued downloads start in (and the page lists them in): priority, then the operators' order, then
    # request time. Paused ones hold their place in the same order.
    QUEUE_ORDER = ("-priority", models.F("position").asc(nulls_last=True), "created_at", "pk")
    WAITING = (Status.QUEUED, Status.PAUSED)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def part_filenames(self) -> list[str]:
        """Every file this download brings: its own, or each part of its split set in order."""
        from modelfiles.gguf_header import split_name

        name = split_name(self.filename) if self.parts > 1 else None
        return [name.part(number) for number in range(1, name.count + 1)] if name else [self.filename]

    WAITING_NOTE = (
        "Waiting for a worker: the task queue could not be reached when this was queued. It is sent again "
        "automatically once the queue answers; nothing to do."
    )

    @property
    def waiting_for_worker(self) -> bool:
        """Queued, but the broker never took its task (it was unreachable): the reconciler sends it again."""
        return self.status == self.Status.QUEUED and self.enqueued_at is None

    @property
    def waiting_to_retry(self) -> bool:
        """Between tries after a transient fault: the worker holds it and starts the next try at `retry_at`."""
        return self.status == self.Status.DOWNLOADING and self.retry_at is not None

    @property
    def percent(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.bytes_total)


class DownloadLimits(models.Model):
    """The one row of download settings operators change on the downloads page while downloads run: the global
    bandwidth limit. Its row is also the lock that starting a download takes (services.download_run_next), so
    the limits on concurrent downloads hold with many workers."""

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    max_speed = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes per second shared by every running download; empty: no global limit.",
    )
    changed = models.BooleanField(
        default=False, help_text="Set on the page or API: until then MODELDESK_MAX_DOWNLOAD_SPEED applies."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "download limits"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="downloadlimits_singleton"),
            models.CheckConstraint(
                condition=Q(max_speed__isnull=True) | Q(max_speed__gt=0), name="downloadlimits_max_speed_positive"
            ),
        ]

    def __str__(self) -> str:
        return "download limits"


class CacheScan(models.Model):
    """The latest cache scan's report, one row for every process (web, workers, commands) to read.

    `skipped` lists the entries the scan could not list, [{"path", "reason"}] with paths relative to the hub
    folder, at most SKIPPED_KEPT of them; `skipped_total` counts them all.
    """

    SKIPPED_KEPT = 500

    finished_at = models.DateTimeField()
    counts = models.JSONField(default=dict, help_text="created, updated, removed, present.")
    skipped = models.JSONField(default=list, blank=True)
    skipped_total = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-finished_at", "-pk"]

    def __str__(self) -> str:
        return f"cache scan at {self.finished_at:%Y-%m-%d %H:%M:%S}: {self.skipped_total} skipped"


class Verification(models.Model):
    """One re-hash of a cached file's blob against its sha256 (or git blob sha1), with progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        OK = "ok"
        CORRUPT = "corrupt"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    modelfile = models.ForeignKey(ModelFile, on_delete=models.CASCADE, related_name="verifications")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    algorithm = models.CharField(
        max_length=16, blank=True, choices=[("sha256", "sha256"), ("git-sha1", "git blob sha1")]
    )
    expected = models.CharField(max_length=64, blank=True, help_text="The hash the bytes must have.")
    actual = models.CharField(max_length=64, blank=True, help_text="The hash they have (once finished).")
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    error_message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="The heartbeat while hashing.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One verification at a time per file: a second press gets the running one.
            models.UniqueConstraint(
                fields=["modelfile"],
                condition=Q(status__in=["queued", "running"]),
                name="verification_one_active_per_file",
            ),
        ]

    def __str__(self) -> str:
        return f"verification of {self.modelfile} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> float | None:
        if not self.bytes_total:
            return None if self.status != self.Status.OK else 100.0
        return min(100.0, 100.0 * self.bytes_done / self.bytes_total)
