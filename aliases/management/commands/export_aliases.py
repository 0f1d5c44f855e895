from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from aliases.transfer import FORMATS, export_chunks
from aliases.transfer_api import exported_aliases


class Command(BaseCommand):
    help = "Write aliases as BodhiApp YAML (a models.yaml list), JSON (the API's shape) or CSV, to a file or stdout."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="bodhi-yaml")
        parser.add_argument("--output", "-o", default="-", help="A file name; - (the default) is stdout.")
        parser.add_argument("--search", default="", help="Only aliases the list's search finds.")
        parser.add_argument("--source", choices=("user", "model"), help="Only user or generated aliases.")
        parser.add_argument("--repo", help="Only this repo's aliases.")

    def handle(self, *args, format, output, search, source, repo, **options):
        try:
            aliases = exported_aliases({"search": search, "source": source, "repo": repo})
        except ValueError as exc:
            raise CommandError(f"--{exc.args[0]}: {exc.args[1]}") from exc
        chunks = export_chunks(aliases, format)
        if output == "-":
            for chunk in chunks:
                sys.stdout.write(chunk)
            return
        with open(output, "w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
