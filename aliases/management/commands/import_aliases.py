from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aliases.services import alias_import
from aliases.transfer import CONFLICT_CHOICES, FORMATS, TransferError, format_for_filename, parse


class Command(BaseCommand):
    help = (
        "Import aliases from BodhiApp alias YAML (one alias per file or a models.yaml list), JSON (the API's shape) "
        "or CSV files, in one transaction, as the import page does. Nothing is saved when a row is refused unless "
        "--valid-only. Exits with status 1 when a row is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--format", choices=FORMATS, help="Default: from each file's extension.")
        parser.add_argument("--on-conflict", choices=CONFLICT_CHOICES, default="skip")
        parser.add_argument("--valid-only", action="store_true", help="Save the valid rows even if some are refused.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; save nothing.")

    def handle(self, *args, files, format, on_conflict, valid_only, dry_run, **options):
        rows = []
        for name in files:
            fmt = format or format_for_filename(name)
            if fmt is None:
                raise CommandError(f"{name}: cannot tell the format from the name; use --format.")
            try:
                rows += parse(Path(name).read_bytes(), fmt)
            except OSError as exc:
                raise CommandError(f"{name}: {exc.strerror}") from exc
            except TransferError as exc:
                raise CommandError(f"{name}: {exc}") from exc
        result = alias_import(rows=rows, by=None, on_conflict=on_conflict, valid_only=valid_only, dry_run=dry_run)
        for row in result.rows:
            if row.action == "error" or row.note:
                reasons = "; ".join(f"{field}: {message}" for field, message in row.errors.items())
                offered = ", ".join(f"{field}={value!r}" for field, value in row.suggestions.items())
                line = f"row {row.number} {row.alias or '(no name)'}: {row.action}"
                for extra in (reasons, offered and f"closest valid: {offered}", row.note):
                    if extra:
                        line += f" - {extra}"
                self.stdout.write(line)
        counts = ", ".join(f"{count} {action}" for action, count in result.counts.items())
        state = "saved" if result.applied else ("dry run, nothing saved" if dry_run else "nothing saved")
        self.stdout.write(f"{counts} ({state})")
        if result.counts["error"]:
            raise SystemExit(1)
