from __future__ import annotations

import sys
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.formatting import human_bytes
from modelfiles import services
from modelfiles.downloader import VERIFIED_GIT_SHA1, VERIFIED_SHA256, Progress
from modelfiles.models import Download

# Exactly what was compared with the Hub's hash before the file became visible, never more.
VERIFIED_WORDS = {
    VERIFIED_SHA256: "sha256 verified",
    VERIFIED_GIT_SHA1: "git blob sha1 verified (the Hub gives no sha256 for files kept in git)",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Command(BaseCommand):
    help = (
        "Pull a GGUF file from the Hugging Face Hub into the cache, with a progress bar. Uses the same service and "
        "downloader as the pages: resumable, verified, one download per file. A part of a split model "
        "(x-00002-of-00003.gguf) pulls every part of the set, as one download. Ctrl-C stops it; running the same "
        "command again resumes."
    )

    def add_arguments(self, parser):
        parser.add_argument("repo", help="owner/name")
        parser.add_argument("filename", help="path of the .gguf file in the repo")
        parser.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")

    def handle(self, *args, repo: str, filename: str, revision: str, **options):
        try:
            download, created = services.download_request(repo=repo, filename=filename, revision=revision, by=None)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        except services.AlreadyLocal as exc:
            every = f" (all {exc.parts} parts of the split model)" if exc.parts > 1 else ""
            self.stdout.write(f"Already in the cache{every}: {exc.path}")
            return
        if not created and download.status != Download.Status.QUEUED:
            # A runner whose heartbeat stopped (a worker or another `pull` killed hard) cannot still be writing:
            # take its download over and resume its partial file instead of refusing until someone cancels it.
            if not services.download_requeue_stale(download_id=download.pk):
                raise CommandError(
                    f"A worker is already downloading this file ({download.status}, "
                    f"{human_bytes(download.bytes_done)} so far); watch it on the downloads page. If it stopped, "
                    f"run this again once it has been silent for {services.STALE_SECONDS:.0f} s "
                    "(MODELDESK_STALE_SECONDS): it is then taken over."
                )
            self.stdout.write(
                f"Taking over the download left by {download.worker or 'a worker'}, silent for more than "
                f"{services.STALE_SECONDS:.0f} s; resuming from {human_bytes(download.bytes_done)}."
            )
        note = services.pull_set_note(parts=download.parts, size=download.bytes_total)
        self.stdout.write(f"Pulling {repo}/{download.filename}@{revision}{note}")
        bar = _Bar(self.stdout)
        try:
            result = services.download_run(download_id=download.pk, worker="manage.py pull", on_progress=bar.show)
        except KeyboardInterrupt:
            services.download_cancel(download=download, by=None)
            bar.end()
            raise CommandError("Stopped. Run the same command again to resume.") from None
        bar.end()
        if result is None:
            raise CommandError("A worker took this download first; watch it on the downloads page.")
        if result.status != Download.Status.COMPLETED:
            raise CommandError(f"{result.status}: {result.error_message}")
        checked = VERIFIED_WORDS.get(result.verified, "no checksum compared")
        parts = f" in {result.parts} parts" if result.parts > 1 else ""
        self.stdout.write(self.style.SUCCESS(f"Done: {human_bytes(result.bytes_done)}{parts}, {checked}."))


class _Bar:
    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        self.last = 0.0
        self.shown = False

    def show(self, progress: Progress) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 5:
            return
        self.last = now
        total = progress.bytes_total
        fraction = progress.bytes_done / total if total else 0.0
        filled = int(self.WIDTH * fraction)
        speed = f"{human_bytes(progress.speed)}/s" if progress.speed else "-"
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction * 100:5.1f}%  "
            f"{human_bytes(progress.bytes_done)} / {human_bytes(total) if total else '?'}  "
            f"{speed}  ETA {_duration(progress.eta)}"
        )
        self.stream.write(("\r" + line) if self.tty else line, ending="" if self.tty else "\n")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.tty and self.shown:
            self.stream.write("")
