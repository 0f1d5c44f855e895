"""What the benchmarks share: Django set up on the benchmark's own database, timing, query counting, servers and
Celery workers started and stopped by pid, a pull timed end to end, and the section each one appends to
docs/PERFORMANCE.md."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
STARTUP_SECONDS = 60
# The file the pull benchmarks fetch from the test Hub.
REPO = "bench/big-GGUF"
FILE = "big.Q4_K_M.gguf"
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


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


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def parse_size(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], bool], *, what: str, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet: connection refused, a 503 while loading, ...
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} within {seconds} s")


def hub_env(endpoint: str) -> dict[str, str]:
    """What points huggingface_hub (in the worker and the pre-flight) at the test Hub, and only there."""
    return {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}


def stop_processes(processes: Sequence[subprocess.Popen]) -> None:
    """SIGTERM to each process group we started (each was started with start_new_session), SIGKILL past 15 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def session_pids(leader: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--sid", str(leader)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time the processes `pids` have used so far (those still alive)."""
    total = 0
    for pid in pids:
        try:
            # Fields after the command name, which is in parentheses and may hold spaces: utime and stime are
            # the 14th and 15th of the whole line.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Worker:
    """A real Celery worker (`celery -A config worker`, one pool process) in its own session, logging to a file
    under MODELDESK_VAR_DIR; started once it answers a ping."""

    def __init__(self, env: dict[str, str], hostname: str):
        self.env = env
        self.hostname = hostname
        self.process: subprocess.Popen | None = None
        self.peak_kib: dict[int, int] = {}

    def start(self) -> None:
        self.log = open(Path(self.env["MODELDESK_VAR_DIR"]) / f"worker-{time.time_ns()}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=1", "--loglevel=INFO",
             f"--hostname={self.hostname}", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        from config.celery import app

        deadline = time.monotonic() + STARTUP_SECONDS
        while not app.control.ping(destination=[self.hostname], timeout=0.5):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("worker did not start; see " + self.log.name)

    def sample(self) -> None:
        # VmHWM is each process's own high-water mark, so one reading after the pull (the pool process that ran
        # it is still alive) gives the peak without polling during the timed part.
        for pid in session_pids(self.process.pid):
            self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), status_kib(pid, "VmHWM"))

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.sample()
            # SIGTERM to the main process only, as Celery wants it (a process manager's "mixed" kill mode): it
            # stops its pool itself. A pool process killed by the signal too may die holding the pool's queue
            # lock, and the main process then waits for that lock for ever while it shuts down (billiard).
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        if os.environ.get("BENCH_VERBOSE"):
            for line in Path(self.log.name).read_text().splitlines():
                if "verified and in the cache" in line:
                    print("  worker:", line.split("] ", 1)[-1], flush=True)


def operator_client():
    """A Django test client signed in as an operator (who may pull), warmed: imports and URL resolving done."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from config.accounts.roles import OPERATOR
    from config.accounts.services import user_set_role

    user, _ = get_user_model().objects.get_or_create(username="bench")
    user_set_role(user=user, role=OPERATOR)
    client = Client()
    client.force_login(user)
    client.get("/api/modelfiles/status")
    return client


def pull_once(
    client,
    worker: Worker | None,
    *,
    kill_at: float | None = None,
    size: int,
    on_queued: Callable[[str], object] | None = None,
) -> tuple[float, str]:
    """POST /api/modelfiles/pull for the benchmark file and wait until its Download row is no longer active (or,
    with `kill_at`, SIGKILL the worker once that share of the file is in). `on_queued` runs once the row exists."""
    from modelfiles.models import Download

    started = time.perf_counter()
    response = client.post("/api/modelfiles/pull", {"repo": REPO, "filename": FILE}, content_type="application/json")
    assert response.status_code == 201, response.content
    download_id = response.json()["id"]
    if on_queued is not None:
        on_queued(download_id)
    killed = False
    while True:
        row = Download.objects.get(pk=download_id)
        if kill_at is not None and not killed and row.bytes_done >= kill_at * size:
            worker.kill()
            killed = True
            return time.perf_counter() - started, download_id
        if not row.is_active:
            break
        # Every 50 ms: polling faster took enough CPU from the worker on two cores to slow the pull it timed;
        # the clock can only run long by this much, against ModelDesk.
        time.sleep(0.05)
    assert row.status == Download.Status.COMPLETED, row.error_message
    if os.environ.get("BENCH_VERBOSE"):
        print(
            f"  queued→claimed {(row.started_at - row.created_at).total_seconds():.3f} s, "
            f"claimed→completed {(row.finished_at - row.started_at).total_seconds():.3f} s",
            flush=True,
        )
    return time.perf_counter() - started, download_id


def pull_into_fresh_cache(
    client,
    env: dict[str, str],
    *,
    hf_home: Path,
    hostname: str,
    size: int,
    sha256: str,
    on_queued: Callable[[str], object] | None = None,
) -> tuple[float, int]:
    """One timed ModelDesk pull into the empty cache `hf_home` by a worker started for it (and stopped after):
    the seconds it took and the worker's peak RSS in KiB. The file is checked and the cache removed."""
    from modelfiles.models import Download

    os.environ["HF_HOME"] = str(hf_home)
    env = {**env, "HF_HOME": str(hf_home)}
    Download.objects.all().delete()
    worker = Worker(env, hostname)
    worker.start()
    try:
        seconds, _ = pull_once(client, worker, size=size, on_queued=on_queued)
    finally:
        worker.stop()
    path = hf_home / "hub" / f"models--{REPO.replace('/', '--')}" / "blobs" / sha256
    assert path.stat().st_size == size
    subprocess.run(["rm", "-rf", str(hf_home)], check=True)
    return seconds, max(worker.peak_kib.values())


def append_section(path: str, *, title: str, command: str, body: str) -> None:
    """Append one benchmark's results to a Markdown file: a dated heading, the command that produced them, the
    figures."""
    with open(path, "a") as handle:
        handle.write(f"\n### {title}\n\n`{command}`\n\n{body}\n")


def heading_depth(line: str) -> int:
    """How many #s start a Markdown heading line (0 for any other line)."""
    marks = len(line) - len(line.lstrip("#"))
    return marks if marks and line[marks : marks + 1] == " " else 0


def replace_section(path: str, *, heading: str, body: str) -> None:
    """Put `heading` and `body` into a Markdown file in place of the section under that heading (up to the next
    heading of the same level or above), or at its end when it has none: running a benchmark again replaces its
    figures."""
    depth = heading_depth(heading)
    try:
        lines = Path(path).read_text().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    section = [f"{heading}\n", "\n", body.rstrip("\n") + "\n"]
    if start is None:
        lines += ["\n", *section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if 0 < heading_depth(lines[i]) <= depth), len(lines))
        lines[start:end] = [*section, *(["\n"] if end < len(lines) else [])]
    Path(path).write_text("".join(lines))


def replace_subsection(path: str, *, heading: str, intro: str, subheading: str, body: str) -> None:
    """Put `intro` under `heading` and `body` under `subheading` inside that section, keeping the section's other
    subsections: runs under other conditions (another database, before and after a change) stay side by side."""
    depth = heading_depth(heading)
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    start = next((i for i, line in enumerate(lines) if line == heading), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if 0 < heading_depth(lines[i]) <= depth), len(lines))
    subsections: dict[str, list[str]] = {}
    current = None
    for line in lines[start + 1 : end]:
        if heading_depth(line) == depth + 1:
            current = subsections.setdefault(line, [])
        elif current is not None:
            current.append(line)
    subsections[subheading] = [body]
    parts = [intro.strip("\n"), ""]
    for title, text in subsections.items():
        parts += [title, "", "\n".join(text).strip("\n"), ""]
    replace_section(path, heading=heading, body="\n".join(parts))
