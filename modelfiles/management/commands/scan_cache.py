from __future__ import annotations

from django.core.management.base import BaseCommand

from modelfiles import cache, services


class Command(BaseCommand):
    help = (
        "Bring the model file list in step with the Hugging Face cache (HF_HOME/hub): new files appear, "
        "gone ones vanish. Entries that cannot be listed (odd names, broken links, missing blobs) are skipped and "
        "listed with the reason; the rest lands."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repo", default=None, help="Scan one repo (owner/name) only.")

    def handle(self, *args, repo: str | None, **options):
        counts = services.modelfile_sync(repo=repo)
        self.stdout.write(
            f"Scanned {cache.hub_dir()}: {counts['present']} GGUF file(s); "
            f"{counts['created']} new, {counts['updated']} changed, {counts['removed']} gone."
        )
        skipped = counts["skipped"]
        if skipped:
            self.stdout.write(
                self.style.WARNING(f"Skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} (paths relative "
                                   "to the cache folder):")
            )  # fmt: skip
            for entry in skipped:
                self.stdout.write(f"  {entry['path']}: {entry['reason']}")
