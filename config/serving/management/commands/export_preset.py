from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from config.serving.preset import comment_text, preset_build
from config.serving.services import preset_current, preset_write


class Command(BaseCommand):
    help = (
        "Write the llama-server router preset for the local aliases: to stdout, or to --output FILE (atomically, "
        "with the chat template files it names beside it). Aliases that cannot be served are listed on stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="A file name; - (the default) is stdout.")

    def handle(self, *args, output, **options):
        if output == "-":
            # Template files need a folder: without --output they go beside MODELDESK_LLAMA_PRESET_PATH, if set.
            preset = preset_current()
            self.stdout.write(preset.text, ending="")
        else:
            path = Path(output).expanduser().absolute()

            preset = preset_build(template_dir=path.parent)
            changed = preset_write(path=path, preset=preset)
            self.stderr.write(f"{'Wrote' if changed else 'Unchanged:'} {path} ({len(preset.served)} aliases served)")
        for item in preset.unserved:
            self.stderr.write(f"not served: {comment_text(item.alias)}: {item.reason}")
