"""Gateway benchmark (issue 10, item 7): ModelDesk's /v1/ gateway under uvicorn against calling llama-server's
router directly, same tiny model, same prompts, in the same run.

    .venv/bin/python bench/gateway.py [--requests 200] [--rounds 5] [--max-tokens 8] [--write docs/PERFORMANCE.md]

Set up in a temporary folder: a fresh SQLite database, a Hugging Face cache holding the tiny llama GGUF the tests
use (random weights: it answers in milliseconds, so what is measured is the path, not the model), one alias on it
(`bench:tiny`: --max-tokens, temperature 0, --parallel slots), the preset ModelDesk writes for it, the llama-server
router (`make llama-server`'s binary) started over that preset with the model loaded, and `manage.py runall`'s
uvicorn command (one process) serving the site. A user's API token authenticates the gateway requests.

Then, each measured the same way for both targets (direct: the router's /v1/chat/completions with the router's id
and the alias's parameters written out; gateway: /v1/chat/completions with the alias's name only), the two
interleaved request by request or round by round so that the machine's noise falls on both alike:

- latency: --requests non-streamed chat completions one at a time, p50 and p95 of each, and the gateway's added
  p50 and p95;
- first streamed byte: --requests streamed completions one at a time, time to the first body byte, p50 and p95;
- throughput: completions per second with 1 and with 32 concurrent clients (asyncio), --requests completions per
  round, --rounds rounds each.

Both sides get the same client: config/serving/router_http.py's (the gateway's own for the router, a fraction of
httpx's CPU), a new connection per request (the router closes each after one completion, so the direct side
cannot keep one; the gateway's clients do the same, so the clients' CPU per request is the same on both sides).

The gateway's cost is read pair by pair: the median of the differences (latency) or ratios (throughput) between
a gateway measurement and the direct one next to it in time.

`--write FILE` replaces this benchmark's section of FILE (from its heading to the next `## `), or appends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    bench_env,
    free_port,
    migrate,
    percentile,
    replace_section,
    setup_django,
    stop_processes,
    wait_until,
)
from config.serving.router_http import json_body, post  # noqa: E402

ALIAS = "bench:tiny"
REPO = "bench/Tiny-Llama-GGUF"
FILENAME = "tiny.F32.gguf"
PROMPT = [{"role": "user", "content": "Tell me a story about a tiny model."}]
TITLE = "## Gateway (`bench/gateway.py`)"


class Target:
    def __init__(self, name: str, base_url: str, model: str, extra: dict, headers: dict[str, str]):
        self.name = name
        self.base_url = base_url
        self.headers = headers
        self.bodies = {
            stream: json_body({"model": model, "messages": PROMPT, **extra, **({"stream": True} if stream else {})})
            for stream in (False, True)
        }


# Completions answered per target (warm-ups included), for the CPU per completion.
ANSWERED = {"direct": 0, "gateway": 0}


async def send(target: Target, *, stream: bool):
    """One chat request, the same way to either target: a new connection (the router closes each after one
    completion, so the direct side cannot keep one; the gateway's clients do the same, so that the benchmark's
    own CPU per request is the same on both sides), the lean client the gateway itself uses for the router (httpx
    spent ~4 ms of CPU per request here at 32 clients, more than the gateway, on the cores the router needs)."""
    response = await post(target.base_url, "/v1/chat/completions", target.bodies[stream], connect_timeout=10,
                          read_timeout=120, headers=target.headers)  # fmt: skip
    if response.status_code != 200:
        await response.aclose()
        raise SystemExit(f"{target.name}: HTTP {response.status_code}")
    return response


async def completion(target: Target) -> float:
    started = time.perf_counter()
    response = await send(target, stream=False)
    try:
        answer = json.loads(await response.aread())
    finally:
        await response.aclose()
    elapsed = time.perf_counter() - started
    ANSWERED[target.name] += 1
    assert answer["usage"]["completion_tokens"] > 0
    return elapsed


async def first_byte(target: Target) -> float:
    started = time.perf_counter()
    response = await send(target, stream=True)
    try:
        pieces = response.aiter_raw()
        await anext(pieces)
        elapsed = time.perf_counter() - started
        async for _ in pieces:
            pass
    finally:
        await response.aclose()
    ANSWERED[target.name] += 1
    return elapsed


async def one_at_a_time(targets: list[Target], requests: int, measure: Callable[..., Awaitable[float]]) -> dict:
    times: dict[str, list[float]] = {target.name: [] for target in targets}
    for target in targets:  # warm: the gateway's kept shelf and token, the router's slots
        for _ in range(5):
            await measure(target)
    for index in range(requests):
        # Alternate which goes first, so neither always follows the other.
        for target in targets if index % 2 == 0 else targets[::-1]:
            times[target.name].append(await measure(target))
    return times


async def throughput(target: Target, concurrency: int, requests: int) -> float:
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await completion(target)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def throughputs(targets: list[Target], concurrency: int, requests: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {target.name: [] for target in targets}
    for target in targets:
        await throughput(target, concurrency, concurrency * 2)  # warm
    for index in range(rounds):
        for target in targets if index % 2 == 0 else targets[::-1]:
            results[target.name].append(await throughput(target, concurrency, requests))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=8, help="the router's slots for the model")
    parser.add_argument("--write", help="replace (or append) this benchmark's section of this Markdown file")
    args = parser.parse_args()

    from config.serving import llama_build

    binary = llama_build.cached_binary()
    if binary is None:
        raise SystemExit(f"no llama-server in {llama_build.version_dir()}/bin: run `make llama-server` first")
    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-gateway-"))
    hf_home = work / "hf_home"
    preset_file = work / "router" / "models.ini"
    env = bench_env(work, HF_HOME=str(hf_home), MODELDESK_LLAMA_PRESET_PATH=str(preset_file))
    processes: list[subprocess.Popen] = []
    try:
        report = run(args, binary=binary, work=work, env=env, preset_file=preset_file, processes=processes)
    finally:
        stop_processes(processes)
        shutil.rmtree(work, ignore_errors=True)
    print(report)
    if args.write:
        command = (f".venv/bin/python bench/gateway.py --requests {args.requests} --rounds {args.rounds} "
                   f"--max-tokens {args.max_tokens} --parallel {args.parallel}")  # fmt: skip
        replace_section(args.write, heading=TITLE, body=f"{METHOD}\n`{command}`\n\n{report}\n")


def run(args, *, binary: Path, work: Path, env: dict[str, str], preset_file: Path, processes: list) -> str:
    import httpx

    migrate(env)
    setup_django(env)
    from django.contrib.auth import get_user_model

    from aliases.services import alias_create
    from config.accounts.management.commands.runall import uvicorn_command
    from config.accounts.services import apitoken_create
    from config.serving.router import router_id
    from config.serving.services import preset_write
    from modelfiles.services import modelfile_sync
    from tests.gguf_files import tiny_llama_gguf
    from tests.modelfiles import cache_file

    cache_file(
        Path(env["HF_HOME"]),
        REPO,
        FILENAME,
        content=tiny_llama_gguf(chat_template=None, context_length=256 * args.parallel),
    )
    modelfile_sync()
    params = {"max_tokens": args.max_tokens, "temperature": 0.0}
    alias_create(data={"alias": ALIAS, "repo": REPO, "filename": FILENAME, "snapshot": "main",
                       "chat_template": "chatml", "n_ctx": 256 * args.parallel, "n_parallel": args.parallel,
                       **params}, by=None)  # fmt: skip
    preset_write(path=preset_file)
    user = get_user_model().objects.create_user("bench-gateway", password=None)
    token = apitoken_create(user=user)

    router_port, site_port = free_port(), free_port()
    router_home = work / "router-hf-home"
    router_home.mkdir()
    router_env = {**os.environ, "HF_HOME": str(router_home), "LD_LIBRARY_PATH": str(binary.parent)}
    router_env.pop("HF_HUB_CACHE", None)
    with open(work / "llama-server.log", "wb") as log:
        processes.append(subprocess.Popen(
            [str(binary), "--models-preset", str(preset_file), "--host", "127.0.0.1", "--port", str(router_port),
             "--no-models-autoload"],
            stdout=log, stderr=subprocess.STDOUT, env=router_env, start_new_session=True,
        ))  # fmt: skip
    router = f"http://127.0.0.1:{router_port}"
    model_id = router_id(ALIAS)
    wait_until(lambda: httpx.get(f"{router}/models").status_code == 200, what="the router up")
    httpx.post(f"{router}/models/load", json={"model": model_id}).raise_for_status()

    def model_loaded() -> bool:
        models = {model["id"]: model for model in httpx.get(f"{router}/models").json()["data"]}
        return models[model_id]["status"]["value"] == "loaded"

    wait_until(model_loaded, what=f"{model_id} loaded")
    site_env = {**os.environ, **env, "MODELDESK_LLAMA_SERVER_URL": router, "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    with open(work / "uvicorn.log", "wb") as log:
        processes.append(subprocess.Popen(
            uvicorn_command(sys.executable, f"127.0.0.1:{site_port}"), cwd=ROOT, env=site_env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
    site = f"http://127.0.0.1:{site_port}"
    wait_until(lambda: httpx.get(f"{site}/login/").status_code == 200, what="uvicorn up")

    targets = [
        Target("direct", router, model_id, params, {}),
        Target("gateway", site, ALIAS, {}, {"Authorization": f"Bearer {token}"}),
    ]
    router_pid, site_pid = processes[0].pid, processes[1].pid
    cpu_before = (session_cpu(router_pid), session_cpu(site_pid), own_cpu())
    load_before = os.getloadavg()[0]
    latency = asyncio.run(one_at_a_time(targets, args.requests, completion))
    first = asyncio.run(one_at_a_time(targets, args.requests, first_byte))
    single = asyncio.run(throughputs(targets, 1, args.requests, args.rounds))
    crowd = asyncio.run(throughputs(targets, 32, args.requests, args.rounds))
    from config.serving.models import ServingUsage

    counted = sum(ServingUsage.objects.filter(alias=ALIAS).values_list("requests", flat=True))
    load_after = os.getloadavg()[0]
    router_cpu, site_cpu = session_cpu(router_pid) - cpu_before[0], session_cpu(site_pid) - cpu_before[1]
    client_cpu = own_cpu() - cpu_before[2]
    every = ANSWERED["direct"] + ANSWERED["gateway"]
    # Noise-free where the timings are not: on a machine whose cores the router needs, the gateway's CPU is what
    # it takes from the router's throughput.
    cpu = (
        f"CPU time per completion: the router (its process and the model's) {router_cpu / every * 1000:.2f} ms, "
        f"uvicorn (the gateway) {site_cpu / ANSWERED['gateway'] * 1000:.2f} ms, this benchmark's clients "
        f"{client_cpu / every * 1000:.2f} ms. Load average (1 min, other work on the machine included): "
        f"{load_before:.1f} at the start, {load_after:.1f} at the end."
    )
    return table(latency, first, single, crowd, counted=counted, args=args) + " " + cpu


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def session_cpu(pid: int) -> float:
    """CPU seconds (user + system) of every process in the session `pid` leads."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == pid:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return total / ticks


def table(latency: dict, first: dict, single: dict, crowd: dict, *, counted: int, args) -> str:
    """The figures, with the gateway's cost read pair by pair: the difference (latency) or ratio (throughput) of
    a gateway measurement and the direct one next to it in time, so that the machine's drift falls on both."""

    def ms(value: float) -> str:
        return f"{value * 1000:.2f}"

    def pairs(times: dict, combine) -> list[float]:
        return [combine(gateway, direct) for gateway, direct in zip(times["gateway"], times["direct"], strict=True)]

    rows = ["| measure | direct | gateway | gateway's cost (median of pairs) |", "|---|---:|---:|---:|"]
    for label, times in (("latency", latency), ("first streamed byte", first)):
        added = pairs(times, lambda gateway, direct: gateway - direct)
        for share, name in ((0.5, "p50"), (0.95, "p95")):
            direct, gateway = percentile(times["direct"], share), percentile(times["gateway"], share)
            cost = f"+{ms(statistics.median(added))} ms" if share == 0.5 else ""
            rows.append(f"| {label} {name} (ms) | {ms(direct)} | {ms(gateway)} | {cost} |")
    ratios = {}
    for label, result in (("completions/s, 1 client", single), ("completions/s, 32 clients", crowd)):
        ratios[label] = statistics.median(pairs(result, lambda gateway, direct: gateway / direct))
        rows.append(f"| {label} | {statistics.median(result['direct']):.1f} | "
                    f"{statistics.median(result['gateway']):.1f} | {ratios[label]:.2f}× |")  # fmt: skip
    added = statistics.median(pairs(latency, lambda gateway, direct: gateway - direct))
    ratio = ratios["completions/s, 32 clients"]
    crowd_ratios = sorted(pairs(crowd, lambda gateway, direct: gateway / direct))
    met_share = sum(each >= 0.9 for each in crowd_ratios) / len(crowd_ratios)
    quartiles = statistics.quantiles(crowd_ratios, n=4) if len(crowd_ratios) > 1 else crowd_ratios * 3
    rows.append("")
    rows.append(
        f"Targets: added p50 ≤ 5 ms: {'met' if added <= 0.005 else 'NOT met'} ({ms(added)} ms); throughput at 32 "
        f"clients ≥ 0.9× direct: {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.2f}×; the {len(crowd_ratios)} "
        f"pairs' ratios: quartiles {quartiles[0]:.2f}, {quartiles[1]:.2f}, {quartiles[2]:.2f}, range "
        f"{crowd_ratios[0]:.2f}–{crowd_ratios[-1]:.2f}, {met_share:.0%} of them ≥ 0.9×). Rounds of throughput "
        f"(direct, gateway): 1 client {_rounds(single)}; 32 clients {_rounds(crowd)}. The gateway recorded "
        f"{counted:,} requests in its usage rows. {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, python {sys.version.split()[0]}."
    )
    return "\n".join(rows)


def _rounds(result: dict) -> str:
    return ", ".join(
        f"({direct:.0f}, {gateway:.0f})" for direct, gateway in zip(result["direct"], result["gateway"], strict=True)
    )


METHOD = """Method (`bench/gateway.py`; its docstring has the details): one run sets up a fresh SQLite database, a
Hugging Face cache with the tests' tiny llama GGUF (random weights, so the model costs little and the path is what
is measured), one alias `bench:tiny` (max_tokens and temperature 0 as defaults, 8 slots), the preset ModelDesk
writes, the llama-server router over it with the model loaded, and `manage.py runall`'s uvicorn command (one
process) serving the site. The same chat request goes to the router directly (router id, the alias's parameters
written out) and through the gateway (alias name and an API token only), interleaved request by request (latency,
first streamed byte) or round by round (throughput), the gateway's cost being the median of each pair's
difference or ratio (a gateway measurement and the direct one next to it in time). Both sides are driven by the
same client on asyncio (`config/serving/router_http.py`, the gateway's own for the router) with a new connection
per request (the router closes each after one completion; the gateway's clients do the same), so the benchmark's
own CPU per request is the same on both sides and small.

The benchmark, the router and uvicorn share the machine's two cores with other engineers' work, so the gateway's
own CPU is taken from the router it waits on, and both wait for the cores in turn: the load average of each run
is recorded with it, and differences of a millisecond or ratios of one round pair are to be read as noise.
"""


if __name__ == "__main__":
    main()
