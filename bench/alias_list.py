"""Alias list benchmark (issue 9, item 9): our list page, its htmx partial, the API and the alias pages against the
Django admin's changelist and change page, on the same rows, side by side in the same run.

    .venv/bin/python bench/alias_list.py [--aliases 100000] [--runs 5] [--page-size 30] [--write docs/PERFORMANCE.md]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_modeldesk .venv/bin/python bench/alias_list.py ...

--aliases aliases are bulk-inserted (about 2,000 repos of 300 owners, mixed values, parameters unset on part of
the rows, a tenth generated from model files), the database is analysed (VACUUM ANALYZE on PostgreSQL, ANALYZE on
SQLite), and a superuser is signed in with Django's test client. Then, in each of --runs rounds, every scenario
asks each contender once, one after the other:

- page:  /aliases/?… (the whole list page);
- htmx:  the same URL with HX-Request (the table partial a sort, page or search link swaps in);
- API:   GET /api/models?… with the same sort, search, page and page size;
- admin: /admin/aliases/alias/?… (the baseline), with list_display set to the list page's columns, so that every
  column sorts there too, and list_per_page to --page-size.

Scenarios: the default order, every column of the list both ways, a search matching few rows and one matching
many, two deep pages, and one alias's page, edit page and GET /api/models/<alias> against the admin's change page.
Printed: median and best per contender, the ratios ours/admin (median and best), the queries per request at two
page sizes (they must not differ), and EXPLAIN (EXPLAIN QUERY PLAN on SQLite) of every distinct query our requests
ran, flagging each that reads a whole table or sorts without an index. The timed requests run inside one big
frame (bench/common.py, with_roomy_stack), so that none pays for CPython 3.11's frame-stack chunks being mapped and
unmapped at its call depth (--plain-stack times them without it). --clock cpu times each request by this process's
CPU time instead of elapsed time: on a shared, busy machine far steadier, and on SQLite the whole of a request's work
(on PostgreSQL it leaves out the server's).

The database is what DATABASE_URL says (a fresh SQLite file in a temporary folder by default). On PostgreSQL give
it a database of its own: the benchmark deletes every alias in it.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Queries,
    append_section,
    bench_env,
    database_name,
    migrate,
    setup_django,
    with_roomy_stack,
)

# The list page's columns, with the matching API sort key and the admin's list_display entry.
COLUMNS = ("alias", "source", "repo", "filename", "snapshot", "chat_template", "n_ctx", "temperature", "updated_at")
FAMILIES = ("Llama-3.1", "Mistral", "Qwen2.5", "Phi-3.5", "gemma-2", "DeepSeek-R1", "Mixtral", "TinyLlama", "Yi",
            "SmolLM2", "OLMo-2", "granite-3.1")  # fmt: skip
SIZES = ("0.5B", "1B", "3B", "7B", "8B", "14B", "32B", "70B")
QUANTS = ("Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_XS", "F16")
TEMPLATES = ("embedded", "llama3", "chatml", "phi3", "gemma", "mistral", "deepseek", "llama2")
N_CTX = (None, None, 0, 2048, 4096, 8192, 8192, 32768, 131072)


def rows(count: int, *, seed: int = 9) -> list[dict]:
    """`count` aliases as plain field values: about 2,000 repos of 300 owners, some parameters unset."""
    from aliases.validators import BUILTIN_CHAT_TEMPLATES

    templates = [name for name in TEMPLATES if name == "embedded" or name in BUILTIN_CHAT_TEMPLATES] or ["embedded"]
    pick = random.Random(seed)
    owners = [f"{pick.choice(('', 'The', 'open-'))}{word}{number}" for number, word in
              enumerate(pick.choice(("Bloke", "bartowski", "unsloth", "lmstudio", "Quant", "mradermacher"))
                        for _ in range(300))]  # fmt: skip
    repos = []
    for number in range(2000):
        family, size = FAMILIES[number % len(FAMILIES)], SIZES[number // len(FAMILIES) % len(SIZES)]
        repos.append((f"{owners[number % 300]}/{family}-{size}-v{number:04d}-GGUF", f"{family}-{size}".lower()))
    result = []
    for number in range(count):
        repo, stem = repos[pick.randrange(len(repos))]
        quant = QUANTS[pick.randrange(len(QUANTS))]
        model = number % 10 == 0
        name = f"{repo}:{quant}-{number}" if model else f"{stem}-{number}:{quant.lower()}"
        if number % 7 == 0:
            name = name.capitalize()  # mixed case: names sort and match ignoring it
        result.append(
            {
                "alias": name,
                "repo": repo,
                "filename": f"{stem}.{quant}.gguf" if number % 5 else f"gguf/{stem}-{number % 3}.{quant}.gguf",
                "snapshot": "main" if number % 4 else f"{pick.getrandbits(160):040x}",
                "source": "model" if model else "user",
                "chat_template": templates[pick.randrange(len(templates))],
                "temperature": None if number % 3 == 0 else round(pick.uniform(0, 2), 2),
                "top_p": None if number % 2 else round(pick.uniform(0.5, 1), 2),
                "max_tokens": None if number % 4 else pick.choice((256, 512, 1024, 2048)),
                "seed": None if number % 6 else pick.randrange(-(2**31), 2**31),
                "stop": [] if number % 3 else ["<|eot_id|>"],
                "user": "" if number % 11 else f"team-{number % 13}",
                "n_ctx": N_CTX[pick.randrange(len(N_CTX))],
                "n_threads": None if number % 5 else pick.choice((4, 8, 16)),
                "n_keep": None if number % 8 else pick.choice((-1, 0, 24)),
                "version": 1 + number % 4,
            }
        )
    return result


@dataclass
class Scenario:
    name: str
    page: str | None  # list page and htmx partial URL (None: not a list scenario)
    api: str
    admin: str
    ours: dict[str, str] = field(default_factory=dict)  # for the alias pages: contender -> URL


def list_scenarios(*, page_size: int, total: int, few: str, many: str) -> list[Scenario]:
    def page(**query: object) -> str:
        return "/aliases/?" + urlencode({"per_page": page_size, **query})

    def api(**query: object) -> str:
        return "/api/models?" + urlencode({"page_size": page_size, **query})

    def admin(**query: object) -> str:
        return "/admin/aliases/alias/" + (f"?{urlencode(query)}" if query else "")

    scenarios = [Scenario("default order", page(), api(), admin())]
    for index, column in enumerate(COLUMNS, start=1):
        scenarios.append(
            Scenario(f"sort {column} asc", page(sort=column), api(sort=column), admin(o=index)),
        )
        scenarios.append(
            Scenario(f"sort {column} desc", page(sort=f"-{column}"), api(sort=column, sort_order="desc"),
                     admin(o=f"-{index}")),
        )  # fmt: skip
    for label, term in (("few", few), ("many", many)):
        scenarios.append(Scenario(f"search {term!r} ({label})", page(q=term), api(search=term), admin(q=term)))
    last = max(1, (total + page_size - 1) // page_size)
    deep = min(3000, last)
    scenarios.append(Scenario(f"deep page {deep}", page(page=deep), api(page=deep), admin(p=deep)))
    deep = min(900, last)
    repo = COLUMNS.index("repo") + 1
    scenarios.append(
        Scenario(f"deep page {deep}, repo desc", page(page=deep, sort="-repo"),
                 api(page=deep, sort="repo", sort_order="desc"), admin(p=deep, o=f"-{repo}")),
    )  # fmt: skip
    return scenarios


def detail_scenarios(alias) -> list[Scenario]:  # type: ignore[no-untyped-def]
    name = quote(alias.alias, safe="/:")
    change = f"/admin/aliases/alias/{alias.pk}/change/"
    return [
        Scenario("alias page", None, "", change, ours={"ours": f"/aliases/{name}/"}),
        Scenario("edit page", None, "", change, ours={"ours": f"/aliases/{name}/edit/"}),
        Scenario("GET /api/models/<alias>", None, "", change, ours={"ours": f"/api/models/{name}"}),
    ]


class Explainer:
    """Every distinct query our requests run, kept with its parameters, to EXPLAIN after the timed runs."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, tuple, str]] = {}

    def record(self, label: str, action) -> None:  # type: ignore[no-untyped-def]
        from django.db import connection

        def keep(execute, sql, params, many, context):
            if not many and sql.lstrip().upper().startswith("SELECT") and "aliases_" in sql:
                self.seen.setdefault(sql, (sql, tuple(params or ()), label))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(keep):
            action()

    def plans(self) -> list[tuple[str, str, str, list[str]]]:
        """(label, sql, plan text, problems) per distinct query."""
        from django.db import connection

        result = []
        for sql, params, label in self.seen.values():
            with connection.cursor() as cursor:
                if connection.vendor == "sqlite":
                    cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
                    plan = [row[-1] for row in cursor.fetchall()]
                else:
                    cursor.execute("EXPLAIN " + sql, params)
                    plan = [row[0] for row in cursor.fetchall()]
            result.append((label, sql, "\n".join(plan), problems(plan, connection.vendor)))
        return result


def problems(plan: list[str], vendor: str) -> list[str]:
    found = []
    for line in plan:
        if vendor == "sqlite":
            scan = sqlite_table_scan(line)
            if scan:
                found.append(f"full scan of {scan}")
            # A sort of rows an index already narrowed (one page by key, one alias's changes, a search's matches
            # by the FTS5 index) is cheap; a sort after walking a whole table is not.
            if "TEMP B-TREE FOR ORDER BY" in line and any(sqlite_table_scan(other) for other in plan):
                found.append("sorted without an index")
        else:
            scan = re.search(r"Seq Scan on (aliases_\w+)", line)
            if scan:
                found.append(f"full scan of {scan[1]}")
    return found


def sqlite_table_scan(line: str) -> str | None:
    """The alias table a SQLite plan line reads whole; None for an index's search (a B-tree's or an FTS5 MATCH,
    `SCAN <fts table> VIRTUAL TABLE INDEX …`)."""
    scan = re.search(r"\bSCAN (aliases_\w+)", line)
    if scan is None or "USING" in line or "VIRTUAL TABLE INDEX" in line:
        return None
    return scan[1]


def table_indexes(connection, table: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """{name: CREATE INDEX statement} of `table`'s indexes, but the primary key's."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                           "AND sql IS NOT NULL", [table])  # fmt: skip
        else:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                           "AND indexname NOT LIKE '%%_pkey'", [table])  # fmt: skip
        return dict(cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aliases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=30, choices=(10, 30, 100))
    parser.add_argument("--explain", action="store_true", help="print every plan, not only the flagged ones")
    parser.add_argument("--write", help="append the results to this Markdown file")
    parser.add_argument(
        "--plain-stack",
        action="store_true",
        help="time the requests at the script's own call depth, without the roomy frame stack (bench/common.py)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time (the default); cpu: this process's CPU time per request, which other work on a "
        "busy machine disturbs far less (on SQLite all of a request's work; on PostgreSQL the server's is left out)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-list-"))
    env = bench_env(work)
    database = database_name(env)
    started = time.perf_counter()
    migrate(env)
    setup_django(env)
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from aliases.models import Alias, AliasChange
    from config.bulk import bulk_insert

    AliasChange.objects.all().delete()
    Alias.objects.all().delete()
    # As a restore would: the indexes are built once over all the rows rather than kept up row by row.
    indexes = table_indexes(connection, Alias._meta.db_table)
    with connection.cursor() as cursor:
        for name in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    bulk_insert(Alias, rows(args.aliases))
    with connection.cursor() as cursor:
        # A spread of change times, as a real shelf has (the bulk insert gives every row the same one).
        if connection.vendor == "sqlite":
            cursor.execute("UPDATE aliases_alias SET updated_at = datetime(updated_at, '-' || ((id * 7919) % 31536000)"
                           " || ' seconds')")  # fmt: skip
            cursor.execute("ANALYZE")
        else:
            cursor.execute("UPDATE aliases_alias SET updated_at = updated_at - ((id * 7919) % 31536000) * "
                           "interval '1 second'")  # fmt: skip
        for definition in indexes.values():
            cursor.execute(definition)
        if connection.vendor == "postgresql":
            # Statistics and the visibility map, as autovacuum leaves a table read more than written (Django runs
            # in autocommit, so VACUUM is outside a transaction).
            cursor.execute("VACUUM ANALYZE aliases_alias")
    total = Alias.objects.count()
    print(f"database {database}: {total:,} aliases ready in {time.perf_counter() - started:.1f} s", flush=True)

    model_admin = admin.site._registry[Alias]
    model_admin.list_display = COLUMNS
    model_admin.list_per_page = args.page_size
    user = get_user_model().objects.filter(username="bench-admin").first() or get_user_model().objects.create_superuser(
        "bench-admin", "bench@example.invalid", "unused-password"
    )
    client = Client()
    client.force_login(user)
    sample = Alias.objects.filter(source="user").order_by("pk")[total // 2 :].first()
    few = sample.repo.split("/")[1].split("-GGUF")[0][-5:]  # "v0421": the aliases of one repo
    many = "q4_k_m"  # one quantisation of ten
    scenarios = list_scenarios(page_size=args.page_size, total=total, few=few, many=many)
    scenarios += detail_scenarios(sample)

    def contenders(scenario: Scenario) -> dict[str, tuple[str, dict]]:
        if scenario.page is None:
            return {**{name: (url, {}) for name, url in scenario.ours.items()}, "admin": (scenario.admin, {})}
        return {
            "page": (scenario.page, {}),
            "htmx": (scenario.page, {"HX-Request": "true"}),
            "API": (scenario.api, {}),
            "admin": (scenario.admin, {}),
        }

    def get(url: str, headers: dict) -> None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
        if url.startswith("/admin/") and "change" not in url:
            assert b"result_list" in response.content, url  # the admin's table, not an error page

    queries = Queries()
    explainer = Explainer()
    for scenario in scenarios:  # warm: templates compiled, URLs resolved; our queries kept for EXPLAIN
        for name, (url, headers) in contenders(scenario).items():
            if name == "admin":
                get(url, headers)
            else:
                explainer.record(f"{scenario.name} · {name}", lambda url=url, headers=headers: get(url, headers))

    # Garbage from one request must not be collected on the next contender's clock: collect before each one, and
    # keep the objects alive since setup out of every collection.
    gc.collect()
    gc.freeze()

    def get_timed(url: str, headers: dict) -> tuple[float, int]:
        gc.collect()
        if args.clock == "wall":
            return queries.count(lambda: get(url, headers))
        started = time.process_time()
        _, count = queries.count(lambda: get(url, headers))
        return time.process_time() - started, count

    times: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}

    def timed_runs() -> None:
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            for scenario in scenarios:
                for name, (url, headers) in contenders(scenario).items():
                    seconds, count = get_timed(url, headers)
                    times.setdefault((scenario.name, name), []).append(seconds)
                    counts[(scenario.name, name)] = count

    # Without it the htmx partial paid 20-25 ms of stack chunks mapped and unmapped that the page did not (see
    # bench/common.py); the admin paid them in some scenarios too.
    # The machine may be shared: its load while timing says how far single figures can be trusted (the ratios are
    # measured side by side, in the same runs).
    load_before = os.getloadavg()
    if args.plain_stack:
        timed_runs()
    else:
        with_roomy_stack(timed_runs)
    load_after = os.getloadavg()

    # Queries per request at two page sizes: the same number, or something runs once per row.
    sizes = (10, 100)
    constant_rows = []
    for label, page_query, api_query in (
        ("default order", {}, {}),
        ("sort n_ctx desc", {"sort": "-n_ctx"}, {"sort": "n_ctx", "sort_order": "desc"}),
        (f"search {many!r}", {"q": many}, {"search": many}),
    ):
        per_size = {}
        for size in sizes:
            page_url = "/aliases/?" + urlencode({"per_page": size, **page_query})
            api_url = "/api/models?" + urlencode({"page_size": size, **api_query})
            per_size[size] = (
                queries.count(lambda url=page_url: get(url, {}))[1],
                queries.count(lambda url=page_url: get(url, {"HX-Request": "true"}))[1],
                queries.count(lambda url=api_url: get(url, {}))[1],
            )
        constant_rows.append((label, per_size))

    plans = explainer.plans()
    flagged = [plan for plan in plans if plan[3]]

    lines = [
        f"{total:,} aliases, database {database}; {args.page_size} rows a page; medians of {args.runs} runs (best "
        "in brackets), each contender asked once per run in turn. Ratio = ours / the admin's in the same run "
        "(target ≤ 0.5)."
        + (
            " Times are the benchmark process's CPU time per request (--clock cpu), not elapsed time."
            if args.clock == "cpu"
            else ""
        ),
        "",
        f"Load average (1, 5, 15 min) on {os.cpu_count()} cores when the timed runs began: "
        + ", ".join(f"{value:.1f}" for value in load_before)
        + "; when they ended: "
        + ", ".join(f"{value:.1f}" for value in load_after)
        + ".",
        "",
        "| scenario | admin ms | page ms | page ratio | htmx ms | htmx ratio | API ms | API ratio | queries "
        "page/htmx/API/admin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for scenario in scenarios:
        admin_times = times[(scenario.name, "admin")]
        base, base_best = statistics.median(admin_times), min(admin_times)
        cells = [scenario.name, f"{base * 1000:.1f}"]
        names = ("page", "htmx", "API") if scenario.page is not None else ("ours",)
        for name in names:
            ours = times[(scenario.name, name)]
            ratio = statistics.median(ours) / base
            worst = max(worst, ratio)
            cells += [f"{statistics.median(ours) * 1000:.1f} ({min(ours) * 1000:.1f})",
                      f"{ratio:.2f} ({min(ours) / base_best:.2f})"]  # fmt: skip
        if scenario.page is None:
            cells += ["", "", "", ""]
        query_counts = [counts[(scenario.name, name)] for name in (*names, "admin")]
        cells.append("/".join(map(str, query_counts)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Worst median ratio: {worst:.2f}. The alias pages compare with the admin's change page of the same alias "
        f"({sample.alias!r}); their ratio is in the page columns.",
        "",
        "Queries per request at two page sizes (page / htmx / API):",
        "",
        "| request | " + " | ".join(f"{size} rows" for size in sizes) + " | constant |",
        "|---|---|---|---|",
    ]
    for label, per_size in constant_rows:
        same = len(set(per_size.values())) == 1
        lines.append(
            f"| {label} | " + " | ".join("/".join(map(str, per_size[size])) for size in sizes)
            + f" | {'yes' if same else '**no**'} |"
        )  # fmt: skip
    lines += [
        "",
        f"EXPLAIN of the {len(plans)} distinct queries on alias tables our requests ran: "
        + (f"{len(flagged)} not served by an index:" if flagged else "every one served by an index."),
    ]
    for label, sql, _plan, found in flagged:
        lines.append(f"- {', '.join(sorted(set(found)))} — {label}: `{sql[:160]}{'…' if len(sql) > 160 else ''}`")
    report = "\n".join(lines)
    if args.explain:
        for label, sql, plan, found in plans:
            print(f"\n-- {label}{' — ' + ', '.join(found) if found else ''}\n{sql}\n{plan}")
    print()
    print(report)
    if args.write:
        command = "DATABASE_URL=postgres://…/bench_modeldesk " if database != "sqlite" else ""
        command += f".venv/bin/python bench/alias_list.py --aliases {args.aliases} --runs {args.runs}"
        command += f" --page-size {args.page_size}" + (" --clock cpu" if args.clock == "cpu" else "")
        append_section(
            args.write,
            title=f"Alias list at {total:,} aliases ({time.strftime('%Y-%m-%d')}, database {database})",
            command=command,
            body=report,
        )
    Alias.objects.all().delete()
    get_user_model().objects.filter(pk=user.pk).delete()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
