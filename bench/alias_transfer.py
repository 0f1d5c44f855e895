"""Alias import/export benchmark (issue 9): import N BodhiApp aliases, export M aliases in each format, each step
beside a baseline measured in the same run on the same rows.

    .venv/bin/python bench/alias_transfer.py [--import-aliases 10000] [--export-aliases 100000]
                                             [--baseline-aliases 1000] [--runs 3] [--write docs/PERFORMANCE.md]

Steps (median of --runs; the table gives each against its baseline):
- parse:           aliases/transfer.parse() of a BodhiApp models.yaml of --import-aliases aliases, against
                   yaml.load with PyYAML's libyaml loader (CSafeLoader) of the same text;
- import:          parse + alias_import() into an empty table (plan, versions, audit: what the API does with an
                   upload), against (a) the same rows saved one by one through alias_create, as the import did
                   before it went in batches, measured on --baseline-aliases rows and scaled per alias, and (b) a
                   plain Alias.objects.bulk_create of the same rows (no checks, versions or audit entries: the floor);
- dry run:         the preview (parse + alias_import(dry_run=True)) of the same file into an empty table, against
                   the same floor;
- overwrite:       parse + alias_import(on_conflict="overwrite") of the same aliases with other values (an update,
                   a version and an audit entry each), against the same floor;
- export <fmt>:    --export-aliases aliases (bulk-inserted first) through the export's own query (the API's
                   filters and order) as bodhi-yaml, json and csv, against reading the same rows as model instances
                   (`iterator(chunk_size=2000)`, what the export read before), and for bodhi-yaml also against
                   `yaml.dump` with libyaml's CSafeDumper of the same mappings.

The database is what DATABASE_URL says (a fresh SQLite file in a temporary folder by default). On PostgreSQL give
it a database of its own: the benchmark deletes every alias, alias version and audit entry in it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bodhi_file(count: int, *, temperature_step: int = 0, prefix: str = "bench") -> str:
    entries = []
    for number in range(count):
        entries.append(
            f"- alias: {prefix}-{number:06d}:instruct\n"
            f"  repo: owner{number % 300}/Model-{number % 2000}-GGUF\n"
            f"  filename: model-{number % 2000}.Q4_K_M.gguf\n"
            f"  chat_template: llama3\n"
            f"  request_params:\n    temperature: 0.{(number + temperature_step) % 10}\n    stop: ['<|eot_id|>']\n"
            f"  context_params:\n    n_ctx: 8192\n    n_keep: 24\n"
        )
    return "".join(entries)


def timed(action: Callable[[], object], *, before: Callable[[], object] | None = None, runs: int = 1) -> float:
    """The median wall time of `action` over `runs` runs, `before` (untimed) ahead of each."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-aliases", type=int, default=10_000)
    parser.add_argument("--export-aliases", type=int, default=100_000)
    parser.add_argument("--baseline-aliases", type=int, default=1_000, help="rows of the one-by-one baseline")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", help="replace the import/export section of this Markdown file with the results")
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
    import yaml
    from django.db import transaction

    from aliases.models import Alias, AliasChange
    from aliases.services import alias_create, alias_import
    from aliases.transfer import FORMATS, alias_as_bodhi, export_chunks, parse, plan_import
    from aliases.transfer_api import exported_aliases
    from config.audit.models import AuditEntry
    from config.bulk import bulk_insert

    database = env["DATABASE_URL"].split("://")[0]

    def empty() -> None:
        Alias.objects.all().delete()
        AliasChange.objects.all().delete()
        AuditEntry.objects.all().delete()

    count, runs = args.import_aliases, args.runs
    text = bodhi_file(count)
    changed = bodhi_file(count, temperature_step=1)
    print(f"database: {database}; models.yaml of {count:,} aliases, {len(text) / 2**20:.1f} MiB; {runs} runs")
    results: dict[str, float] = {}

    def record(name: str, seconds: float) -> float:
        results[name] = seconds
        print(f"{name:<44} {seconds:8.3f} s", flush=True)
        return seconds

    record("parse: yaml.load (CSafeLoader)", timed(lambda: yaml.load(text, Loader=yaml.CSafeLoader), runs=runs))
    record("parse: transfer.parse", timed(lambda: parse(text, "bodhi-yaml"), runs=runs))

    def import_new() -> None:
        result = alias_import(rows=parse(text, "bodhi-yaml"), by=None)
        assert result.applied and result.counts["create"] == count, result.counts

    record("import", timed(import_new, before=empty, runs=runs))
    plan_values = [row.values for row in plan_import(parse(text, "bodhi-yaml"))]
    empty()

    def floor() -> None:
        Alias.objects.bulk_create(Alias(source=Alias.Source.USER, **values) for values in plan_values)

    record("floor: bulk_create", timed(floor, before=empty, runs=runs))

    baseline_text = bodhi_file(args.baseline_aliases, prefix="one")

    def one_by_one() -> None:
        with transaction.atomic():
            for row in plan_import(parse(baseline_text, "bodhi-yaml")):
                alias_create(data=row.values, by=None)

    per_alias = timed(one_by_one, before=empty, runs=1) / args.baseline_aliases
    one_time = record(f"baseline: one by one ({args.baseline_aliases:,} rows, scaled)", per_alias * count)

    def preview() -> None:
        result = alias_import(rows=parse(text, "bodhi-yaml"), by=None, dry_run=True)
        assert result.counts["create"] == count, result.counts

    record("dry run", timed(preview, before=empty, runs=runs))
    import_new()

    state = {"text": changed}

    def overwrite() -> None:
        result = alias_import(rows=parse(state["text"], "bodhi-yaml"), by=None, on_conflict="overwrite")
        assert result.applied and result.counts["update"] == count, result.counts
        state["text"] = text if state["text"] is changed else changed  # the next run changes them back

    record("overwrite", timed(overwrite, runs=runs))

    missing = args.export_aliases - Alias.objects.count()
    if missing > 0:
        template = Alias.objects.first()
        columns = [field for field in Alias._meta.concrete_fields if not field.primary_key]
        values = {field.name: getattr(template, field.attname) for field in columns}
        bulk_insert(Alias, [{**values, "alias": f"extra-{number:06d}"} for number in range(missing)])
    exported = Alias.objects.count()
    print(f"exporting {exported:,} aliases")
    sizes: dict[str, int] = {}

    def read_models() -> None:
        for _alias in exported_aliases({}).iterator(chunk_size=2000):
            pass

    record("export floor: read model instances", timed(read_models, runs=runs))
    for fmt in FORMATS:

        def export(fmt: str = fmt) -> None:
            sizes[fmt] = sum(len(chunk) for chunk in export_chunks(exported_aliases({}), fmt))

        record(f"export {fmt}", timed(export, runs=runs))

    def pyyaml_dump() -> None:
        data = [alias_as_bodhi(alias) for alias in exported_aliases({}).iterator(chunk_size=2000)]
        yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)

    record("export baseline: yaml.dump (CSafeDumper)", timed(pyyaml_dump, runs=1))

    floor_time = results["floor: bulk_create"]
    read_time = results["export floor: read model instances"]
    mib = {fmt: sizes[fmt] / 2**20 for fmt in FORMATS}
    lines = [
        "| step | against | ratio | time (s) |",
        "|---|---|---|---|",
        f"| parse a {count:,}-alias models.yaml ({len(text) / 2**20:.1f} MiB) | yaml.load, CSafeLoader | "
        f"{results['parse: transfer.parse'] / results['parse: yaml.load (CSafeLoader)']:.2f}× | "
        f"{results['parse: transfer.parse']:.2f} |",
        f"| import {count:,} (parse, plan, aliases, versions, audit) | one by one through alias_create "
        f"({args.baseline_aliases:,} rows, scaled: {one_time:.1f} s) | {results['import'] / one_time:.3f}× | "
        f"{results['import']:.2f} |",
        f"| import {count:,} | plain bulk_create of the same rows ({floor_time:.2f} s) | "
        f"{results['import'] / floor_time:.1f}× | {results['import']:.2f} |",
        f"| dry run (the preview) of {count:,} | plain bulk_create | {results['dry run'] / floor_time:.1f}× | "
        f"{results['dry run']:.2f} |",
        f"| overwrite {count:,} (updates, versions, audit) | plain bulk_create | "
        f"{results['overwrite'] / floor_time:.1f}× | {results['overwrite']:.2f} |",
    ]
    for fmt in FORMATS:
        lines.append(
            f"| export {exported:,} as {fmt} ({mib[fmt]:.1f} MiB) | reading them as model instances "
            f"({read_time:.2f} s) | {results[f'export {fmt}'] / read_time:.2f}× | {results[f'export {fmt}']:.2f} |"
        )
    dump_time = results["export baseline: yaml.dump (CSafeDumper)"]
    lines.append(
        f"| export {exported:,} as bodhi-yaml | yaml.dump with CSafeDumper ({dump_time:.2f} s) | "
        f"{results['export bodhi-yaml'] / dump_time:.2f}× | {results['export bodhi-yaml']:.2f} |"
    )
    report = "\n".join(lines)
    print(report)
    if args.write:
        command = "bench/alias_transfer.py" + "".join(
            f" --{name.replace('_', '-')} {getattr(args, name)}"
            for name in ("import_aliases", "export_aliases", "baseline_aliases", "runs")
        )
        heading = f"### {database} ({time.strftime('%Y-%m-%d')})"
        write_section(Path(args.write), heading, f"`.venv/bin/python {command}`\n\n{report}\n")
    empty()
    subprocess.run(["rm", "-rf", str(work)], check=False)


SECTION = "## Alias import and export (`bench/alias_transfer.py`)"


def write_section(path: Path, heading: str, body: str) -> None:
    """Put `body` under `heading` in the import/export section of `path`, in place of an earlier run on the same
    database (else at the section's end); the rest of the file stays as it is."""
    text = path.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    end = len(text) if end == -1 else end + 1
    section = text[start:end]
    block = f"{heading}\n\n{body}\n"
    database = heading.split(" (")[0]
    at = section.find(database + " (")
    if at != -1:
        after = section.find("\n### ", at + 1)
        after = len(section) if after == -1 else after + 1
        section = section[:at] + block + section[after:]
    else:
        section = section.rstrip("\n") + "\n\n" + block
    path.write_text(text[:start] + section.rstrip("\n") + "\n" + ("\n" + text[end:] if end < len(text) else ""))


if __name__ == "__main__":
    main()
