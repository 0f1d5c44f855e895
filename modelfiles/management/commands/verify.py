from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.formatting import human_bytes
from modelfiles import services
from modelfiles.downloader import Progress
from modelfiles.models import ModelFile, Verification


class Command(BaseCommand):
    help = (
        "Re-hash the cached model files against their sha256 (or git blob sha1) and mark mismatches corrupt, as "
        "the Verify button does, here and now. Exits with status 1 when a file is corrupt or could not be checked."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repo", default=None, help="Verify the files of one repo (owner/name) only.")

    def handle(self, *args, repo: str | None, **options):
        services.modelfile_sync(repo=repo)  # verify what is there now, not what the last scan saw
        files = ModelFile.objects.filter(present=True).order_by("repo", "filename", "snapshot", "pk")
        if repo is not None:
            files = files.filter(repo=repo)
        files = list(files)
        if not files:
            self.stdout.write("No model files to verify.")
            return
        bad = 0
        live = self.stdout.isatty() if hasattr(self.stdout, "isatty") else sys.stdout.isatty()
        for number, modelfile in enumerate(files, start=1):
            name = f"{modelfile.repo}/{modelfile.filename}@{modelfile.snapshot[:8]}"
            prefix = f"[{number}/{len(files)}] {name}"

            def progress(step: Progress, prefix: str = prefix) -> None:
                shown = 100 * step.bytes_done / step.bytes_total if step.bytes_total else 100.0
                line = f"{prefix}: {shown:5.1f} % of {human_bytes(step.bytes_total)}"
                # On a terminal one line that updates itself; in a log one line per report (about once a second).
                self.stdout.write(f"\r{line}" if live else line, ending="" if live else "\n")
                self.stdout.flush()

            try:
                verification, _ = services.verification_request(modelfile=modelfile, by=None, enqueue=False)
            except ValidationError as exc:
                self.stdout.write(f"{prefix}: {' '.join(exc.messages)}")
                continue
            done = services.verification_run(verification_id=verification.pk, on_progress=progress) or verification
            if live:
                self.stdout.write("\r", ending="")
            if done.status == Verification.Status.OK:
                self.stdout.write(f"{prefix}: ok ({done.algorithm}, {human_bytes(done.bytes_total)})")
            elif done.status == Verification.Status.CORRUPT:
                bad += 1
                self.stdout.write(
                    self.style.ERROR(f"{prefix}: CORRUPT: its {done.algorithm} is {done.actual[:16]}…, expected "
                                     f"{done.expected[:16]}…; re-pull it from the model files page")
                )  # fmt: skip
            else:
                bad += 1
                reason = done.error_message or f"another verification is {done.status}"
                self.stdout.write(self.style.WARNING(f"{prefix}: not verified: {reason}"))
        if bad:
            raise CommandError(f"{bad} of {len(files)} file(s) corrupt or not verified.")
        self.stdout.write(self.style.SUCCESS(f"All {len(files)} file(s) verified."))
