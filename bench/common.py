"""What the benchmarks share: Django set up on the benchmark's own database, timing, query counting, and the
section each one appends to docs/PERFORMANCE.md."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET_KEY = "bench-secret-key-not-for-production-0123456789"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# CPython 3.11 and 3.12 keep Python frames on a stack of 16 KiB chunks and free a chunk as soon as the frame that
# opened it returns (python/cpython#142183, fixed by a cached chunk in 3.13 and later). A request whose frames keep
# going up and down across a chunk boundary (the rendering of each table cell, say) maps and unmaps a chunk every
# time: ~1,600 mmap/munmap pairs and page faults, 20-25 ms, in the alias list's htmx partial at the benchmark's
# call depth, and none a few frames higher or lower. Which request pays depends only on how deep its caller sits,
# not on the work it does. Timed requests therefore run inside one frame big enough that its chunk (1 MiB) leaves
# half a megabyte of room above it: no request reaches a boundary, whichever contender it is.
_ROOMY_LOCALS = 66_000  # 8 bytes each plus CPython's 1,000-slot margin: just over 512 KiB, so a 1 MiB chunk


def _roomy_runner() -> Callable[[Callable[[], object]], object]:
    names = " = ".join(f"_{number}" for number in range(_ROOMY_LOCALS))
    source = f"def run(action):\n    if False:\n        {names} = None\n    return action()\n"
    namespace: dict = {}
    exec(compile(source, "<roomy stack>", "exec"), namespace)  # locals are counted even in a branch never taken
    return namespace["run"]


def with_roomy_stack(action: Callable[[], object]) -> object:
    """`action()` with ~500 KiB of frame stack free above it, so the calls inside never cross a chunk boundary."""
    return _roomy_runner()(action)


def bench_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmark working in `work`: DATABASE_URL as given, else a fresh SQLite file there."""
    return {
        "MODELDESK_VAR_DIR": str(work / "var"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", BENCH_SECRET_KEY),
        "ALLOWED_HOSTS": "testserver,localhost",
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}"),
        **extra,
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def database_name(env: dict[str, str]) -> str:
    return env["DATABASE_URL"].split("://")[0]


class Queries:
    """How many queries an action ran, counted as they reach the database driver (nothing is kept)."""

    def count(self, action: Callable[[], object]) -> tuple[float, int]:
        from django.db import connection

        executed = 0

        def counter(execute, sql, params, many, context):
            nonlocal executed
            executed += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            seconds = timed(action)
        return seconds, executed


def median_ms(times: Sequence[float]) -> float:
    return statistics.median(times) * 1000


def append_section(path: str, *, title: str, command: str, body: str) -> None:
    """Append one benchmark's results to a Markdown file: a dated heading, the command that produced them, the
    figures."""
    with open(path, "a") as handle:
        handle.write(f"\n### {title}\n\n`{command}`\n\n{body}\n")


def replace_section(path: str, *, heading: str, body: str) -> None:
    """Put `heading` and `body` into a Markdown file in place of the section under that heading (up to the next
    heading of the same level), or at its end when it has none: running a benchmark again replaces its figures."""
    level = heading.split(" ", 1)[0] + " "
    try:
        lines = Path(path).read_text().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    section = [f"{heading}\n", "\n", body.rstrip("\n") + "\n"]
    if start is None:
        lines += ["\n", *section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(level)), len(lines))
        lines[start:end] = [*section, *(["\n"] if end < len(lines) else [])]
    Path(path).write_text("".join(lines))
