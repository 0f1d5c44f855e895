"""Alias import/export benchmark (issue 9): import N BodhiApp aliases, export M aliases in each format.

    .venv/bin/python bench/alias_transfer.py [--import-aliases 10000] [--export-aliases 100000]

Steps, each timed once and printed:
- parse:          aliases/transfer.parse() of a BodhiApp models.yaml holding --import-aliases aliases;
- dry run:        alias_import(dry_run=True) of those rows into an empty table (the preview's work);
- import:         alias_import() of the same rows (every alias through alias_create: versions and audit);
- export <fmt>:   --export-aliases aliases (bulk-inserted first) written as bodhi-yaml, json and csv.

The database is what DATABASE_URL says (a fresh SQLite file in a temporary folder by default). On PostgreSQL give
it a database of its own: the benchmark deletes every alias in it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bodhi_file(count: int) -> str:
    entries = []
    for number in range(count):
        entries.append(
            f"- alias: bench-{number:06d}:instruct\n"
            f"  repo: owner{number % 300}/Model-{number % 2000}-GGUF\n"
            f"  filename: model-{number % 2000}.Q4_K_M.gguf\n"
            f"  chat_template: llama3\n"
            f"  request_params:\n    temperature: 0.{number % 10}\n    stop: ['<|eot_id|>']\n"
            f"  context_params:\n    n_ctx: 8192\n    n_keep: 24\n"
        )
    return "".join(entries)


def timed(label: str, action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    print(f"{label:<28} {time.perf_counter() - started:8.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-aliases", type=int, default=10_000)
    parser.add_argument("--export-aliases", type=int, default=100_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-transfer-"))
    env = {
        "MODELDESK_VAR_DIR": str(work / "var"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production-0123456789"),
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}"),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from aliases.models import Alias
    from aliases.services import alias_import
    from aliases.transfer import FORMATS, export_chunks, parse
    from config.bulk import bulk_insert

    Alias.objects.all().delete()
    text = bodhi_file(args.import_aliases)
    print(f"database: {env['DATABASE_URL'].split('://')[0]}; models.yaml of {args.import_aliases:,} aliases, "
          f"{len(text) / 2**20:.1f} MiB")  # fmt: skip
    rows = timed("parse bodhi-yaml", lambda: parse(text, "bodhi-yaml"))
    result = timed("dry run (preview)", lambda: alias_import(rows=parse(text, "bodhi-yaml"), by=None, dry_run=True))
    assert result.counts["create"] == args.import_aliases, result.counts
    result = timed(f"import {args.import_aliases:,}", lambda: alias_import(rows=rows, by=None))
    assert result.applied and Alias.objects.count() == args.import_aliases

    missing = args.export_aliases - Alias.objects.count()
    if missing > 0:
        template = Alias.objects.first()
        columns = [field for field in Alias._meta.concrete_fields if not field.primary_key]
        values = {field.name: getattr(template, field.attname) for field in columns}
        bulk_insert(Alias, [{**values, "alias": f"extra-{number:06d}"} for number in range(missing)])
    print(f"exporting {Alias.objects.count():,} aliases")
    for fmt in FORMATS:
        size = timed(
            f"export {fmt}",
            lambda fmt=fmt: sum(len(chunk) for chunk in export_chunks(Alias.objects.order_by("alias", "pk")
                                                                      .iterator(chunk_size=2000), fmt)),
        )  # fmt: skip
        print(f"{'':<28} {size / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
