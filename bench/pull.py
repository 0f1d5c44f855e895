"""Pull benchmark: ModelDesk's end-to-end pull against curl and hf_hub_download, on one test Hub, in one run.

    .venv/bin/python bench/pull.py [--size 1GiB] [--runs 3] [--cap 50MB] [--write docs/PERFORMANCE.md]

- curl:            `curl -s -o FILE URL` from the test Hub (its own process, serving with sendfile);
- hf_hub_download: huggingface_hub's own download of the same file into an empty cache;
- ModelDesk:       POST /api/modelfiles/pull (the real view, in-process) → broker → a real Celery worker →
                   sha256 verified → visible in the cache, timed until the Download row says completed;
- worker memory:   peak RSS (VmHWM) of every process of the worker, read once the pull is done;
- kill and resume: the worker is SIGKILLed at about half way and started again; bytes fetched twice.
- capped connections: the same three again with the test Hub holding every connection to `--cap` bytes a second,
                   as CDNs do: curl's one stream is the baseline, ModelDesk fetches byte ranges over several
                   connections (MODELDESK_DOWNLOAD_CONNECTIONS, default 8).

The broker and database are what the environment says (CELERY_BROKER_URL, DATABASE_URL); by default a fresh
SQLite file and the on-disk broker in a temporary folder. Throughputs are reported as ratios to curl's, measured
in the same run, because absolute speeds depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    FILE,
    REPO,
    Worker,
    hub_env,
    operator_client,
    parse_size,
    pull_into_fresh_cache,
    pull_once,
    setup_django,
)
from tests.hub.server import FakeHubProcess  # noqa: E402
from tests.hub.server import parse_size as parse_rate  # noqa: E402


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", help="append the results to this Markdown file")
    parser.add_argument("--cap", default="50MB", help="bytes a second per connection in the capped rounds (0: none)")
    parser.add_argument("--capped-runs", type=int, default=3)
    parser.add_argument(
        "--target-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the contenders write (default: /dev/shm, so disk write-back noise stays out of the ratios)",
    )
    args = parser.parse_args()
    size = parse_size(args.size)
    cap = parse_rate(args.cap)  # "50MB": 50,000,000 bytes a second
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-"))
    out = Path(tempfile.mkdtemp(prefix="modeldesk-bench-out-", dir=args.target_dir))
    print(f"work dir {work}, downloads into {out}; file {size:,} bytes; {args.runs} runs each", flush=True)

    with FakeHubProcess([f"{REPO}:{FILE}:{size}"], data_dir=work / "hubdata") as hub:
        sha256 = hub.manifest["repos"][REPO]["files"][FILE]["sha256"]
        url = f"{hub.endpoint}/{REPO}/resolve/main/{FILE}"
        base_env = {
            **os.environ,
            **hub_env(hub.endpoint),
            "MODELDESK_VAR_DIR": str(work / "var"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production-0123456789"),
            "ALLOWED_HOSTS": "testserver,localhost",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}"),
        }
        base_env.pop("HF_TOKEN", None)

        def curl() -> float:
            target = out / "curl.out"
            seconds = timed(["curl", "-s", "-f", "-o", str(target), url])
            target.unlink()
            return seconds

        def hf(run: int) -> float:
            code = (
                "from huggingface_hub import hf_hub_download as d; "
                f"d({REPO!r}, {FILE!r}, cache_dir={str(out / f'hf-{run}')!r})"
            )
            seconds = timed([sys.executable, "-c", code], env=base_env)
            subprocess.run(["rm", "-rf", str(out / f"hf-{run}")], check=True)
            return seconds

        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=base_env, check=True)
        setup_django(base_env)
        from modelfiles.downloader import CONNECTIONS
        from modelfiles.models import Download

        client = operator_client()  # a warm server: imports and URL resolving done before timing

        def modeldesk(run: int, **extra: str) -> tuple[float, int]:
            return pull_into_fresh_cache(
                client, {**base_env, **extra}, hf_home=out / f"md-{run}", hostname=f"bench-{run}@localhost",
                size=size, sha256=sha256,
            )  # fmt: skip

        def rounds(
            runs: int, *, one_stream: bool
        ) -> tuple[list[float], list[float], list[float], list[int], list[float]]:
            curl_times, hf_times, md_times, peaks, single_times = [], [], [], [], []
            # Rounds interleave the contenders, each starting with no dirty pages left by the one before, so
            # that disk write-back and cache state do not favour whoever runs first.
            for run in range(runs):
                subprocess.run(["sync"], check=True)
                curl_times.append(curl())
                subprocess.run(["sync"], check=True)
                hf_times.append(hf(run))
                subprocess.run(["sync"], check=True)
                seconds, peak = modeldesk(run)
                md_times.append(seconds)
                peaks.append(peak)
                if one_stream:  # the same code with one connection: what the ranges cost or win here
                    subprocess.run(["sync"], check=True)
                    single_times.append(modeldesk(run, MODELDESK_DOWNLOAD_CONNECTIONS="1")[0])
            return curl_times, hf_times, md_times, peaks, single_times

        curl()  # warm the server's page cache so every contender reads the same way
        curl_times, hf_times, md_times, peaks, single_times = rounds(args.runs, one_stream=True)
        capped = None
        if cap:
            hub.configure(connection_bytes_per_second=cap)
            capped = rounds(args.capped_runs, one_stream=False)
            hub.configure(connection_bytes_per_second=None)

        # Kill at about half way and restart. Each connection is capped for this part so that the pull takes
        # about six seconds and "half way" is well defined.
        os.environ["HF_HOME"] = str(out / "md-kill")
        env = {**base_env, "HF_HOME": os.environ["HF_HOME"]}
        Download.objects.all().delete()
        hub.clear_log()
        hub.configure(connection_bytes_per_second=max(size / 6 / CONNECTIONS, 1))
        worker = Worker(env, "bench-kill@localhost")
        worker.start()
        _, download_id = pull_once(client, worker, kill_at=0.5, size=size)
        killed_at = Download.objects.get(pk=download_id).bytes_done
        worker = Worker(env, "bench-kill@localhost")  # the same name: it takes back what it held
        worker.start()
        hub.configure(connection_bytes_per_second=None)
        try:
            while Download.objects.get(pk=download_id).is_active:
                time.sleep(0.05)
        finally:
            worker.stop()
        row = Download.objects.get(pk=download_id)
        assert row.status == Download.Status.COMPLETED, row.error_message
        sent = sum(r["bytes_sent"] for r in hub.requests() if r["method"] == "GET" and r["status"] in (200, 206))
        refetched = sent - size
        ranges = [r["range"] for r in hub.requests() if r["method"] == "GET" and r.get("range")]

    load_after = Path("/proc/loadavg").read_text().split()[:3]
    lines = table(size, curl_times, hf_times, md_times, single_times)
    lines += [
        "",
        f"- Worker peak RSS during the pull (largest process, VmHWM): {max(peaks) / 1024:.0f} MB "
        f"(runs: {', '.join(f'{p / 1024:.0f}' for p in peaks)} MB).",
        f"- Killed at {killed_at / size:.0%} ({killed_at:,} bytes) and restarted: {len(ranges)} range requests in "
        f"all (before and after the kill); bytes fetched twice {refetched:,} = {refetched / size:.2%} of the file.",
        f"- All times: curl {[round(t, 2) for t in curl_times]}, hf_hub_download {[round(t, 2) for t in hf_times]}, "
        f"ModelDesk {[round(t, 2) for t in md_times]}, ModelDesk one stream {[round(t, 2) for t in single_times]} s.",
    ]
    if capped is not None:
        c_curl, c_hf, c_md, c_peaks, _ = capped
        lines += [
            "",
            f"Every connection capped at {cap / 1e6:.0f} MB/s by the test Hub ({CONNECTIONS} connections for "
            f"ModelDesk; curl and hf_hub_download use one):",
            "",
            *table(size, c_curl, c_hf, c_md),
            "",
            f"- Worker peak RSS (capped rounds): {max(c_peaks) / 1024:.0f} MB.",
            f"- All times: curl {[round(t, 2) for t in c_curl]}, hf_hub_download {[round(t, 2) for t in c_hf]}, "
            f"ModelDesk {[round(t, 2) for t in c_md]} s.",
        ]
    lines += [
        "",
        f"- Load average (1, 5, 15 min) of the shared machine: {', '.join(load_before)} before, "
        f"{', '.join(load_after)} after.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        broker = os.environ.get("CELERY_BROKER_URL", "filesystem (embedded)").split("://")[0]
        database = base_env["DATABASE_URL"].split("://")[0]
        with open(args.write, "a") as handle:
            handle.write(
                f"\n### Pull of {args.size} ({time.strftime('%Y-%m-%d')}, broker {broker}, database {database})\n\n"
                f"`.venv/bin/python bench/pull.py --size {args.size} --runs {args.runs} --cap {args.cap} "
                f"--capped-runs {args.capped_runs}` (downloads into "
                f"{args.target_dir or 'a temporary folder'})\n\n{report}\n"
            )
    subprocess.run(["rm", "-rf", str(work), str(out)], check=False)


def table(
    size: int, curl_times: list[float], hf_times: list[float], md_times: list[float], single: list[float] = ()
) -> list[str]:
    curl_s, hf_s, md_s = (statistics.median(t) for t in (curl_times, hf_times, md_times))
    curl_b, hf_b, md_b = (min(t) for t in (curl_times, hf_times, md_times))
    mbps = lambda seconds: size / seconds / 1e6  # noqa: E731
    extra = []
    if single:
        one_s, one_b = statistics.median(single), min(single)
        extra = [f"| ModelDesk pull, one stream (MODELDESK_DOWNLOAD_CONNECTIONS=1) | {one_s:.2f} | {mbps(one_s):.0f} "
                 f"| {curl_s / one_s:.2f} | {curl_b / one_b:.2f} |"]  # fmt: skip
    return [
        "| contender | median time (s) | median MB/s | ratio to curl, median | ratio to curl, best runs |",
        "|---|---|---|---|---|",
        f"| curl -o (baseline) | {curl_s:.2f} | {mbps(curl_s):.0f} | 1.00 | 1.00 |",
        f"| hf_hub_download (huggingface_hub) | {hf_s:.2f} | {mbps(hf_s):.0f} | {curl_s / hf_s:.2f} "
        f"| {curl_b / hf_b:.2f} |",
        f"| ModelDesk pull, API → worker → verified | {md_s:.2f} | {mbps(md_s):.0f} | {curl_s / md_s:.2f} "
        f"| {curl_b / md_b:.2f} |",
        *extra,
    ]


if __name__ == "__main__":
    main()
