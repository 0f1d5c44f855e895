from __future__ import annotations

from django.core.management.base import BaseCommand

from config.formatting import human_size
from modelfiles import cache, cleanup, services


class Command(BaseCommand):
    help = (
        "Remove leftovers from the Hugging Face cache (HF_HOME/hub): partial downloads that are not active, "
        "revisions no ref points at and no alias is pinned to, .no_exist folders and stale lock files; with "
        "--unused-files also the model files no alias uses. Active downloads are never touched. --dry-run lists "
        "what would go; --yes removes it."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--dry-run", action="store_true", help="List what would be removed; remove nothing.")
        mode.add_argument("--yes", action="store_true", help="Remove it (no question asked).")
        parser.add_argument(
            "--kind",
            action="append",
            choices=list(cleanup.KINDS),
            help="Only this kind (repeat for several). Default: every kind but unused_file.",
        )
        parser.add_argument("--unused-files", action="store_true", help="Also the model files no alias uses.")

    def handle(self, *args, dry_run: bool, yes: bool, kind: list[str] | None, unused_files: bool, **options):
        kinds = list(kind or cleanup.DEFAULT_KINDS)
        if unused_files and cleanup.UNUSED_FILE not in kinds:
            kinds.append(cleanup.UNUSED_FILE)
        if not cache.hub_dir().is_dir():
            self.stdout.write(f"There is no cache at {cache.hub_dir()} yet: nothing to clean up.")
            return
        if dry_run:
            plan = services.cache_cleanup_plan(kinds=kinds)
            for item in plan:
                detail = f" ({item.detail})" if item.detail else ""
                self.stdout.write(f"  {item.kind}: {item.path}  {human_size(item.size)}{detail}")
            total = sum(item.size for item in plan)
            self.stdout.write(
                f"Dry run: {len(plan)} entr{'y' if len(plan) == 1 else 'ies'} would be removed from "
                f"{cache.hub_dir()}, freeing {human_size(total)}. Nothing was removed; run with --yes to remove them."
            )
            return
        removal = services.cache_cleanup(kinds=kinds, by=None)
        for path in removal.removed:
            self.stdout.write(f"  removed {path}")
        for path in removal.kept:
            self.stdout.write(self.style.WARNING(f"  left {path}: a download took it, or it was gone"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed {len(removal.removed)} entr{'y' if len(removal.removed) == 1 else 'ies'}, freeing "
                f"{human_size(removal.freed)}."
            )
        )
