"""Live pages under a crowd (issue 12, item 2): 100 people watching the downloads page and the dashboard during a
pull, against the same pull with nobody watching, in one run.

    .venv/bin/python bench/pollers.py [--pollers 100] [--seconds 30] [--rate 4MiB] [--sqlite] [--write FILE]

Set up: PostgreSQL (DATABASE_URL, else the local database `bench_pollers`, created when missing; connections kept
60 s as the README's gunicorn line does, unless DB_CONN_MAX_AGE says otherwise) and Redis (CELERY_BROKER_URL, else
database 12 of the local server, and CACHE_URL for the cache, else its database 13); `--sqlite` uses a fresh SQLite
file, the on-disk broker and each process's own memory as the cache instead (the embedded setup). The test Hub
(`tests/hub/server.py`, its own process) serves a generated file throttled to --rate bytes per second, sized so
that a pull lasts about --seconds; gunicorn serves `config.wsgi` with 2 workers (DEBUG off); each pull is made by
a real Celery worker started for it, into an empty model cache.

1. The pull with nobody watching, timed from the API call until the Download row says completed.
2. The same pull again; as soon as it is queued, --pollers simulated browsers (asyncio + httpx, one client and
   one signed-in session each; half viewers, half operators; half on the downloads page, half on the dashboard)
   open their page at a random moment within the first second and then do what htmx does with the page's
   active-downloads fragment: poll its own `hx-get` URL 1 s after the previous answer was swapped in (the
   swapped-in fragment starts its own `every 1s` timer), with HX-Request, HX-Current-URL of the page and the
   ETag last received (If-None-Match, as the browser's cache revalidates); a 304 keeps the fragment; an answer
   carrying HX-Trigger `downloads-changed` makes the page reload what listens to it (the history table on the
   downloads page, the summary on the dashboard); a fragment without `hx-get` (nothing active) ends the polling.
3. The report: polls answered per second while every poller was polling, poll latency percentiles as the
   pollers saw them, answers by status, errors (exceptions, timeouts and any status but 200/304), the pull's
   speed in both runs and their ratio, and on PostgreSQL the database transactions per request
   (pg_stat_database; each query outside a transaction is one, so this is about the queries per request).

`--write FILE` puts the figures in this benchmark's section of FILE under a heading naming the database, the
broker, the cache and --label: a run under the same conditions replaces its figures, others stay beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    FILE,
    REPO,
    bench_env,
    cpu_seconds,
    free_port,
    hub_env,
    migrate,
    operator_client,
    parse_size,
    percentile,
    pull_into_fresh_cache,
    replace_subsection,
    session_pids,
    setup_django,
    stop_processes,
    wait_until,
)
from tests.hub.server import FakeHubProcess  # noqa: E402

TITLE = "## Live pages under 100 pollers (`bench/pollers.py`)"
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bench_pollers"
DEFAULT_BROKER = "redis://127.0.0.1:6379/12"
DEFAULT_CACHE = "redis://127.0.0.1:6379/13"
GUNICORN_WORKERS = 2
# A browser waits as long as it takes (htmx sets no timeout); gunicorn gives up on a request after 30 s.
REQUEST_TIMEOUT = 30.0
# What a page reloads when a poll says the downloads changed, found by the element's id.
RELOADED_BY_EVENT = {"download-history", "dashboard-summary"}


def attribute(page: str, element_id: str, name: str) -> str | None:
    """The attribute `name` of the element with id `element_id` in `page`, unescaped, if it has one."""
    tag = re.search(rf'<[a-z]+ id="{element_id}"[^>]*>', page)
    value = tag and re.search(rf'\s{name}="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


@dataclass
class Tally:
    """Every request the crowd made: seconds by kind ("page", "poll", "reload"), status codes, errors."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {"page": [], "poll": [], "reload": []})
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    poll_answered_at: list[float] = field(default_factory=list)
    # (answered at, seconds) of each answered poll: the latencies while the crowd only polled, apart from the
    # first second's page loads and the reloads at the end.
    poll_timeline: list[tuple[float, float]] = field(default_factory=list)
    pages_loaded_at: list[float] = field(default_factory=list)
    changed_events: int = 0


class Poller:
    """One browser tab on `page`, signed in with its own session cookie."""

    def __init__(self, *, base_url: str, page: str, cookies: dict[str, str], tally: Tally):
        import httpx

        self.page = page
        self.current_url = base_url + page
        self.tally = tally
        self.client = httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=REQUEST_TIMEOUT, trust_env=False)
        self.reloads: set[asyncio.Task] = set()

    async def request(self, kind: str, url: str, *, ok: tuple[int, ...] = (200,), **headers: str):
        started = time.perf_counter()
        try:
            response = await self.client.get(url, headers=headers)
        except Exception as error:  # a timeout, a refused or reset connection: what a browser would show as lost
            self.tally.errors[f"{kind}: {type(error).__name__}"] += 1
            return None
        self.tally.seconds[kind].append(time.perf_counter() - started)
        self.tally.statuses[kind, response.status_code] += 1
        if response.status_code not in ok:
            self.tally.errors[f"{kind}: HTTP {response.status_code}"] += 1
            return None
        return response

    def htmx_headers(self, target: str) -> dict[str, str]:
        return {"HX-Request": "true", "HX-Current-URL": self.current_url, "HX-Target": target, "HX-Trigger": target}

    async def run(self, *, delay: float, stop: threading.Event) -> None:
        await asyncio.sleep(delay)
        page = await self.request("page", self.page)
        self.tally.pages_loaded_at.append(time.perf_counter())
        if page is None:
            return
        poll_url = attribute(page.text, "active-downloads", "hx-get")
        reload_target = next((name for name in RELOADED_BY_EVENT if f'id="{name}"' in page.text), None)
        reload_url = reload_target and attribute(page.text, reload_target, "hx-get")
        etag = None
        while poll_url and not stop.is_set():
            await asyncio.sleep(1.0)
            headers = self.htmx_headers("active-downloads")
            if etag:
                headers["If-None-Match"] = etag
            response = await self.request("poll", poll_url, ok=(200, 304), **headers)
            if response is None:
                continue  # htmx keeps the old fragment, whose timer polls again
            answered_at = time.perf_counter()
            self.tally.poll_answered_at.append(answered_at)
            self.tally.poll_timeline.append((answered_at, self.tally.seconds["poll"][-1]))
            etag = response.headers.get("ETag", etag)
            if response.status_code == 200:
                poll_url = attribute(response.text, "active-downloads", "hx-get")
            if reload_url and response.headers.get("HX-Trigger") == "downloads-changed":
                self.tally.changed_events += 1
                # The browser sends the reload at once, beside the polling; it does not wait for it.
                task = asyncio.create_task(self.request("reload", reload_url, **self.htmx_headers(reload_target)))
                self.reloads.add(task)
                task.add_done_callback(self.reloads.discard)
        await asyncio.gather(*self.reloads)
        await self.client.aclose()


async def crowd(pollers: list[Poller], stop: threading.Event) -> None:
    await asyncio.gather(*(poller.run(delay=random.random(), stop=stop) for poller in pollers))


def signed_in_cookies(count: int) -> list[tuple[str, dict[str, str]]]:
    """`count` users, alternately viewers and operators, each with a session made directly in the session store:
    (role, cookies)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    from config.accounts.roles import OPERATOR, VIEWER
    from config.accounts.services import user_set_role

    store = import_module(settings.SESSION_ENGINE).SessionStore
    sessions = []
    for index in range(count):
        role = OPERATOR if index % 2 else VIEWER
        user, created = get_user_model().objects.get_or_create(username=f"poller-{index:03d}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user_set_role(user=user, role=role)
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        sessions.append((role, {settings.SESSION_COOKIE_NAME: session.session_key}))
    return sessions


def ensure_postgres_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    command = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
    listed = subprocess.run(["psql", *command, "-Atc", "select datname from pg_database"], env=env, check=True,
                            capture_output=True, text=True).stdout.split()  # fmt: skip
    if name not in listed:
        subprocess.run(["createdb", *command, name], env=env, check=True)


def transactions() -> int | None:
    """Transactions committed in this database so far, by every process (PostgreSQL only)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def settled_transactions() -> int | None:
    # Other backends report their counts when they end, and an idle one that keeps its connection (gunicorn with
    # DB_CONN_MAX_AGE) within 10 s (PostgreSQL 15's idle stats interval); the worker has stopped by now.
    time.sleep(11)
    return transactions()


@dataclass
class Run:
    seconds: float
    transactions: int | None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30, help="about how long each pull lasts")
    parser.add_argument("--rate", default="4MiB", help="the test Hub's throttle, bytes per second")
    parser.add_argument("--sqlite", action="store_true", help="a fresh SQLite file and the on-disk broker")
    parser.add_argument("--label", default="", help="names this run's conditions in its heading, e.g. 'before'")
    parser.add_argument("--write", help="replace (or add) this run's part of this benchmark's section of this file")
    args = parser.parse_args()
    rate = parse_size(args.rate)
    size = int(rate * args.seconds)
    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-pollers-"))
    load_before = os.getloadavg()
    if args.sqlite:
        services = {"DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}", "CACHE_URL": "", "REDIS_URL": ""}
    else:
        services = {
            "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE),
            "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER),
            "CACHE_URL": os.environ.get("CACHE_URL", DEFAULT_CACHE),
            "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "60"),
        }
        if "DATABASE_URL" not in os.environ:
            ensure_postgres_database(services["DATABASE_URL"])
    processes: list[subprocess.Popen] = []
    print(f"work dir {work}; file {size:,} bytes at {rate:,} B/s; {args.pollers} pollers", flush=True)
    try:
        with FakeHubProcess([f"{REPO}:{FILE}:{size}"], data_dir=work / "hubdata") as hub:
            hub.set_faults(throttle_bytes_per_second=rate)
            env = bench_env(
                work, **services, **hub_env(hub.endpoint), DEBUG="false",
                ALLOWED_HOSTS="127.0.0.1,localhost,testserver", HF_HOME=str(work / "hf-crowd"),
                # One stream at --rate: the test Hub throttles each connection, and the pull must last --seconds
                # (eight ranges would end it in an eighth of the time, before the crowd has settled).
                MODELDESK_DOWNLOAD_CONNECTIONS="1",
            )  # fmt: skip
            env = {key: value for key, value in {**os.environ, **env}.items() if key != "HF_TOKEN"}
            report = run(args, env=env, work=work, hub=hub, size=size, processes=processes)
    finally:
        stop_processes(processes)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    database = services["DATABASE_URL"].split("://")[0]
    broker = services.get("CELERY_BROKER_URL", "filesystem (embedded)").split("://")[0]
    cache = (services["CACHE_URL"] or "memory of each process").split("://")[0]
    busy = max(load_before[0], load_after[0]) >= 2  # more runnable processes than cores
    note = (
        ": it was busy with other work (tests, browsers, other benchmarks), which took CPU from the server, the "
        "worker and the pollers alike."
        if busy
        else "."
    )
    machine = (
        f"Machine: 2 cores, shared; load average (1 min) {load_before[0]:.1f} before the run and "
        f"{load_after[0]:.1f} at its end{note}"
    )
    body = f"{report}\n\n{machine}"
    print(body)
    if args.write:
        options = (" --sqlite" if args.sqlite else "") + (f" --label '{args.label}'" if args.label else "")
        command = (f".venv/bin/python bench/pollers.py --pollers {args.pollers} --seconds {args.seconds:g} "
                   f"--rate {args.rate}{options}")  # fmt: skip
        subheading = "### " + ", ".join(
            filter(None, [args.label, f"database {database}", f"broker {broker}", f"cache {cache}"])
        )
        replace_subsection(
            args.write, heading=TITLE, intro=METHOD, subheading=subheading,
            body=f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{command}`\n\n{body}",
        )  # fmt: skip


def run(args, *, env: dict[str, str], work: Path, hub: FakeHubProcess, size: int, processes: list) -> str:
    import httpx

    migrate(env)
    setup_django(env)
    from django.urls import reverse

    from modelfiles.models import Download

    sha256 = hub.manifest["repos"][REPO]["files"][FILE]["sha256"]
    Download.objects.all().delete()
    client = operator_client()
    sessions = signed_in_cookies(args.pollers)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(work / "gunicorn.log", "wb") as log:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(GUNICORN_WORKERS),
             "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
    wait_until(lambda: httpx.get(f"{base_url}/healthz").status_code == 200, what="gunicorn up")
    pages = [reverse("modelfiles:downloads"), reverse("home")]
    warm(base_url, pages=pages, cookies=sessions[0][1])

    def pull(name: str, on_queued=None) -> Run:
        before = transactions()
        seconds, _ = pull_into_fresh_cache(
            client, env, hf_home=work / f"hf-{name}", hostname=f"bench-{name}@localhost", size=size, sha256=sha256,
            on_queued=on_queued,
        )  # fmt: skip
        after = settled_transactions()
        return Run(seconds, None if before is None else after - before)

    quiet = pull("quiet")
    tally = Tally()
    pollers = [
        Poller(base_url=base_url, page=pages[index % 2], cookies=cookies, tally=tally)
        for index, (_role, cookies) in enumerate(sessions)
    ]
    stop = threading.Event()
    watching = threading.Thread(target=lambda: asyncio.run(crowd(pollers, stop)))
    queued_at: list[float] = []

    def start_watching(_download_id: str) -> None:
        queued_at.append(time.perf_counter())
        watching.start()

    server = processes[-1]
    server_cpu, own_cpu = cpu_seconds(session_pids(server.pid)), time.process_time()
    crowded = pull("crowd", on_queued=start_watching)
    # The pull's clock started just before the row was queued; the worker's shutdown afterwards is not counted.
    ended = queued_at[0] + crowded.seconds
    # The last answers say nothing is active and end the polling; past a few seconds, stop whoever is left.
    watching.join(timeout=REQUEST_TIMEOUT)
    stop.set()
    watching.join()
    cpu = {"server": cpu_seconds(session_pids(server.pid)) - server_cpu, "bench": time.process_time() - own_cpu}
    return table(quiet=quiet, crowded=crowded, tally=tally, ended=ended, size=size, pollers=args.pollers, cpu=cpu)


def warm(base_url: str, *, pages: list[str], cookies: dict[str, str]) -> None:
    """A server that has been running: both gunicorn workers have imported the views and compiled the templates
    (a first page took about a second), as they have long before anyone opens a page."""
    import httpx
    from django.urls import reverse

    poll = {"HX-Request": "true", "HX-Current-URL": base_url + pages[0]}
    with httpx.Client(base_url=base_url, cookies=cookies, timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        for _ in range(GUNICORN_WORKERS * 3):
            for page in pages:
                client.get(page).raise_for_status()
            client.get(reverse("modelfiles:downloads-active"), headers=poll).raise_for_status()


def table(
    *, quiet: Run, crowded: Run, tally: Tally, ended: float, size: int, pollers: int, cpu: dict[str, float]
) -> str:
    everyone_polling = max(tally.pages_loaded_at)
    window = ended - everyone_polling
    served = sum(everyone_polling <= at <= ended for at in tally.poll_answered_at) / window
    polls = tally.seconds["poll"]
    steady = [seconds for at, seconds in tally.poll_timeline if everyone_polling + 1 <= at <= ended - 1]

    def ms(values: list[float], share: float) -> str:
        return f"{percentile(values, share) * 1000:.0f}" if values else "–"

    def speed(run: Run) -> str:
        return f"{size / run.seconds / 1e6:.2f}"

    requests = sum(tally.statuses.values())
    if crowded.transactions is None:
        per_request = "– (PostgreSQL only)"
    else:
        # The worker and this process commit transactions of their own; the quiet pull says how many per second.
        own = quiet.transactions / quiet.seconds * crowded.seconds
        per_request = f"{(crowded.transactions - own) / requests:.1f}"
    errors = ", ".join(f"{what} × {count}" for what, count in sorted(tally.errors.items())) or "none"
    ratio = quiet.seconds / crowded.seconds
    lines = [
        "| measure | target | measured |",
        "|---|---|---|",
        f"| polls answered per second ({pollers} pollers at 1 Hz, {window:.1f} s with all polling) | {pollers} "
        f"| {served:.1f} |",
        f"| poll latency p50 / p95 / p99 (ms) | p95 ≤ 50 | {ms(polls, 0.5)} / {ms(polls, 0.95)} / {ms(polls, 0.99)} |",
        f"| errors | 0 | {sum(tally.errors.values())} ({errors}) |",
        f"| pull speed with pollers / without (MB/s) | ratio ≥ 0.90 | {speed(crowded)} / {speed(quiet)} = "
        f"{ratio:.2f} |",
        "",
        f"- Polls: {len(polls):,} answered, {tally.statuses['poll', 200]:,} with 200 (rendered) and "
        f"{tally.statuses['poll', 304]:,} with 304; max {ms(polls, 1.0)} ms. Only those answered from 1 s after the "
        f"last page load until 1 s before the pull ended ({len(steady):,}): p50 / p95 / p99 {ms(steady, 0.5)} / "
        f"{ms(steady, 0.95)} / {ms(steady, 0.99)} ms, max {ms(steady, 1.0)} ms.",
        f"- Page loads: {len(tally.seconds['page'])}, p50 / p95 {ms(tally.seconds['page'], 0.5)} / "
        f"{ms(tally.seconds['page'], 0.95)} ms. Reloads on `downloads-changed` (history table, dashboard summary): "
        f"{tally.changed_events} events, p50 / p95 {ms(tally.seconds['reload'], 0.5)} / "
        f"{ms(tally.seconds['reload'], 0.95)} ms.",
        f"- Database transactions per request (≈ queries; pg_stat_database, the quiet pull's own rate taken off): "
        f"{per_request}.",
        f"- CPU while the crowd watched: gunicorn {cpu['server']:.1f} s for {requests:,} requests "
        f"({cpu['server'] / requests * 1000:.0f} ms each), the benchmark's own process {cpu['bench']:.1f} s "
        f"(over a pull of {crowded.seconds:.0f} s on 2 cores).",
        f"- Pulls of {size:,} bytes: {quiet.seconds:.2f} s with nobody watching, {crowded.seconds:.2f} s with "
        f"{pollers} pollers.",
    ]
    return "\n".join(lines)


METHOD = """\
Method: PostgreSQL and Redis on this machine (Redis as the broker and, since the runs "from the cache", as the
cache: `CACHE_URL`; database connections kept 60 s, `DB_CONN_MAX_AGE=60`, as the README's gunicorn line has it);
gunicorn serving `config.wsgi` with 2 workers (sync, DEBUG off);
the test Hub in its own process, throttled so that a pull of the generated file lasts about `--seconds`; each
pull by a real Celery worker into an empty cache, timed from `POST /api/modelfiles/pull` until the row says
completed (with the Hub throttled, the speed ratio says whether the worker keeps that pace under the crowd; a
higher `--rate` asks more of it). First the pull with nobody watching, then the same pull with the crowd: as
soon as it is queued, each simulated browser (asyncio + httpx in the benchmark's process, its own signed-in
session; half viewers, half operators; half on the downloads page, half on the dashboard) opens its page within
the first second and then polls the active-downloads fragment as htmx does: its `hx-get` URL, 1 s after the
previous answer arrived, with `HX-Request`, `HX-Current-URL` and `If-None-Match` (the last ETag); a
`downloads-changed` trigger makes it reload the history table or the dashboard summary. Latencies are as the
pollers saw them (their event loop shares the two cores with the server, the worker, the Hub and the
databases). "Polls answered per second" counts the answers between the moment the last page finished loading
and the end of the pull (the latencies of the polls answered from 1 s after that moment until 1 s before the end
are given apart: they leave out the first second's page loads and the last polls, queued behind the reloads);
with htmx's timing (next poll 1 s after the answer) a poller that waits L seconds for
each answer polls 1/(1 + L) times a second, so 100 is reached only when answers are near-instant. On a busy
machine the rate and the latencies mostly measure the wait for a core; gunicorn's CPU per request, the 200/304
split and the transactions per request are steadier, and they are what serving the fragment from a cache
should bring down.
"""


if __name__ == "__main__":
    main()
