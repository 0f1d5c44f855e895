"""Cache-sync benchmark: ModelDesk's scan and sync against huggingface_hub's scan_cache_dir, same cache, same run.

    .venv/bin/python bench/cache_sync.py [--files 10000] [--repos 300] [--revisions 3] [--runs 3]
                                         [--aliases 100000] [--vocab 0] [--write docs/PERFORMANCE.md]

A synthetic Hugging Face cache is built in a temporary folder the way huggingface_hub lays one out
(`models--owner--name/{blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>, refs/main}`), with
blobs that start with a real GGUF header (written by the `gguf` package: the usual general, llama and tokenizer
keys, a vocabulary of --vocab tokens, a chat template on every other quantisation, one tensor description) and
are sparse after it (real sizes, no bytes written), a README and a config.json beside the GGUF files of each
snapshot, and files kept unchanged from one revision to the next sharing their blob. Then, each median of `--runs`:

- scan_cache_dir:       huggingface_hub's own scan of the whole cache (the baseline every ratio is against);
- scan_gguf:            our walker alone (modelfiles/cache.py), no database;
- first sync:           modelfile_sync() into empty tables (rows, generated aliases, audit, scan report);
- unchanged rescan:     modelfile_sync() again, nothing changed on disk;
- sync after a pull:    one new file in one repo, then modelfile_sync(repo=...), as the worker does after a pull;
- the last two again with `--aliases` user aliases present (the first sync too);
- header read:          one read_header() of a header holding a 151,936-token vocabulary (a current model's), for
                        scale: the cache's own headers hold --vocab tokens;
- pages at N files:     the model files page (/files/?per_page=100) and /api/modelfiles?page_size=100 against the
                        Django admin's changelist of the same rows (100 per page), signed in with a test client.

The database is what DATABASE_URL says (a fresh SQLite file in the temporary folder by default). On PostgreSQL,
give it a database of its own: the benchmark deletes every model file, alias and audit row in it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Queries, append_section, setup_django, timed  # noqa: E402

QUANTS = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_K_S", "Q5_K_M", "Q6_K",
          "Q8_0", "F16", "BF16", "IQ2_XS", "IQ3_M", "IQ4_XS", "IQ4_NL", "F32", "MXFP4")  # fmt: skip


def commit_of(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def sha256_of(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def gguf_head(quant: str, *, vocab: int, template: bool) -> bytes:
    """The header of a GGUF file of this quantisation, written by the `gguf` package (no tensor data)."""
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "head.gguf"
        writer = GGUFWriter(path, "llama")
        writer.add_name(f"Bench {quant}")
        writer.add_size_label("8B")
        file_type = getattr(LlamaFileType, f"MOSTLY_{quant}", None) or getattr(LlamaFileType, f"ALL_{quant}", None)
        writer.add_file_type(int(file_type if file_type is not None else LlamaFileType.MOSTLY_Q4_K_M))
        writer.add_context_length(8192)
        writer.add_embedding_length(4096)
        writer.add_block_count(32)
        writer.add_head_count(32)
        writer.add_rope_freq_base(500000.0)
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"tok{i}" for i in range(vocab)])
        writer.add_token_types([1] * vocab)
        if template:
            writer.add_chat_template("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}")
        writer.add_tensor_info("token_embd.weight", (4096, 64), np.dtype(np.float32), 4096 * 64 * 4)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        return path.read_bytes()


def write_blob(path: Path, size: int, head: bytes = b"GGUF") -> None:
    if path.exists():
        return
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)  # sparse: the size is real, the disk blocks are not


def link(snapshot: Path, filename: str, etag: str) -> None:
    target = snapshot / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    depth = len(Path(filename).parts) - 1
    os.symlink("/".join([".."] * (2 + depth) + ["blobs", etag]), target)


def build_cache(hub: Path, *, files: int, repos: int, revisions: int, vocab: int = 0) -> dict[str, str]:
    """`files` GGUF snapshot entries over `repos` repos of `revisions` commits each; {repo: latest commit}."""
    heads = {quant: gguf_head(quant, vocab=vocab, template=number % 2 == 0) for number, quant in enumerate(QUANTS)}
    per_snapshot = [0] * (repos * revisions)
    for index in range(files):
        per_snapshot[index % len(per_snapshot)] += 1
    latest: dict[str, str] = {}
    for number in range(repos):
        repo = f"owner{number % 40:02d}/model-{number:04d}-GGUF"
        root = hub / ("models--" + repo.replace("/", "--"))
        blobs = root / "blobs"
        blobs.mkdir(parents=True)
        for revision in range(revisions):
            commit = commit_of(repo, revision)
            snapshot = root / "snapshots" / commit
            snapshot.mkdir(parents=True)
            for name, content in (("README.md", b"# model card\n"), ("config.json", b"{}\n")):
                etag = commit_of(repo, revision, name)  # small files are git blobs: 40-hex names
                write_blob(blobs / etag, len(content), content)
                link(snapshot, name, etag)
            for slot in range(per_snapshot[number * revisions + revision]):
                quant = QUANTS[slot % len(QUANTS)]
                stem = f"model-{number:04d}" if slot < len(QUANTS) else f"model-{number:04d}-v{slot // len(QUANTS)}"
                filename = f"{stem}.{quant}.gguf" if slot % 7 else f"gguf/{stem}.{quant}.gguf"
                # Half of the files keep their bytes from one revision to the next, so they share the blob.
                etag = sha256_of(repo, filename, 0 if slot % 2 else revision)
                write_blob(blobs / etag, 2_000_000 + slot * 4096 + revision, heads[quant])
                link(snapshot, filename, etag)
            latest[repo] = commit
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text(latest[repo])
    return latest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=300)
    parser.add_argument("--revisions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--aliases", type=int, default=100_000, help="user aliases present in the second part")
    parser.add_argument("--page-runs", type=int, default=7)
    parser.add_argument(
        "--vocab",
        type=int,
        default=0,
        help="tokens in the vocabulary of each synthetic header (0: the fixed cost of a header; each token adds the "
        "step over it)",
    )
    parser.add_argument("--write", help="append the results to this Markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modeldesk-bench-sync-"))
    hf_home = work / "hf_home"
    hub = hf_home / "hub"
    started = time.perf_counter()
    latest = build_cache(hub, files=args.files, repos=args.repos, revisions=args.revisions, vocab=args.vocab)
    print(f"cache of {args.files:,} GGUF files in {args.repos} repos × {args.revisions} revisions built in "
          f"{time.perf_counter() - started:.1f} s under {work}", flush=True)  # fmt: skip

    env = {
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "MODELDESK_VAR_DIR": str(work / "var"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production-0123456789"),
        "ALLOWED_HOSTS": "testserver,localhost",
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}"),
    }
    os.environ.pop("HF_HUB_CACHE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)
    setup_django(env)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from huggingface_hub import scan_cache_dir

    from aliases.models import Alias
    from config.audit.models import AuditEntry
    from modelfiles.cache import scan_gguf
    from modelfiles.models import CacheScan, ModelFile
    from modelfiles.services import modelfile_sync

    queries = Queries()
    database = env["DATABASE_URL"].split("://")[0]
    pulled_repo = next(iter(latest))
    pulled_snapshot = hub / ("models--" + pulled_repo.replace("/", "--")) / "snapshots" / latest[pulled_repo]

    def reset() -> None:
        for model in (ModelFile, CacheScan, AuditEntry):
            model.objects.all().delete()
        Alias.objects.filter(source=Alias.Source.MODEL).delete()

    def baseline() -> None:
        report = scan_cache_dir(hub)
        assert not report.warnings, report.warnings[:3]

    pulled_head = gguf_head("Q4_K_M", vocab=args.vocab, template=True)

    def one_pull(run: int) -> tuple[float, int]:
        # A new file lands in the pulled repo's snapshot, as a pull leaves it; removed again (untimed) after.
        filename = f"pulled-{run}.Q4_K_M.gguf"
        etag = sha256_of(pulled_repo, filename, run)
        write_blob(pulled_snapshot.parent.parent / "blobs" / etag, 2_000_000, pulled_head)
        link(pulled_snapshot, filename, etag)
        seconds, count = queries.count(lambda: modelfile_sync(repo=pulled_repo))
        assert ModelFile.objects.filter(repo=pulled_repo, filename=filename, present=True).exists()
        (pulled_snapshot / filename).unlink()
        (pulled_snapshot.parent.parent / "blobs" / etag).unlink()
        modelfile_sync(repo=pulled_repo)
        return seconds, count

    results: dict[str, list[float]] = {}
    counts: dict[str, int] = {}

    def note(name: str, seconds: float, count: int | None = None) -> None:
        results.setdefault(name, []).append(seconds)
        if count is not None:
            counts[name] = count
        print(f"  {name}: {seconds:.3f} s" + ("" if count is None else f", {count:,} queries"), flush=True)

    def sync_rounds(suffix: str) -> None:
        for run in range(args.runs):
            print(f"run {run + 1}{suffix}", flush=True)
            note("scan_cache_dir" + suffix, timed(baseline))
            note("scan_gguf" + suffix, timed(lambda: scan_gguf()))
            reset()
            seconds, count = queries.count(modelfile_sync)
            assert ModelFile.objects.filter(present=True).count() == args.files
            # Every header was read whole (none refused early): the sync measured what a real shelf costs.
            assert ModelFile.objects.filter(present=True, state="ok").exclude(gguf_architecture="").count() == (
                args.files
            )
            note("first sync" + suffix, seconds, count)
            answer = None

            def rescan() -> None:
                nonlocal answer
                answer = modelfile_sync()

            note("unchanged rescan" + suffix, *queries.count(rescan))
            assert (answer["created"], answer["updated"], answer["removed"]) == (0, 0, 0), answer
            note("sync after a pull (one repo)" + suffix, *one_pull(run))

    sync_rounds("")
    generated = Alias.objects.filter(source=Alias.Source.MODEL).count()

    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.invalid", "unused-password")
    client = Client()
    client.force_login(user)
    pages = {
        "model files page (/files/, 100 rows)": "/files/?per_page=100",
        "API (/api/modelfiles, 100 rows)": "/api/modelfiles?page_size=100",
        "admin changelist (100 rows)": "/admin/modelfiles/modelfile/",
    }
    page_results: dict[str, list[float]] = {}
    page_counts: dict[str, int] = {}

    def page_rounds(suffix: str) -> None:
        for url in pages.values():
            assert client.get(url).status_code == 200  # warm: templates compiled, URLs resolved
        for _ in range(args.page_runs):
            for name, url in pages.items():
                response = None

                def get(url: str = url) -> None:
                    nonlocal response
                    response = client.get(url)

                seconds, count = queries.count(get)
                assert response.status_code == 200, (url, response.status_code)
                page_results.setdefault(name + suffix, []).append(seconds)
                page_counts[name + suffix] = count

    page_rounds("")

    from modelfiles.gguf_header import read_header

    big_header = work / "big-vocab.gguf"
    write_blob(big_header, 5_000_000_000, gguf_head("Q4_K_M", vocab=151_936, template=True))
    header_times = []
    for _ in range(args.page_runs):
        header_times.append(timed(lambda: read_header(big_header)))
    assert read_header(big_header).state == "ok"

    alias_suffix = f", {args.aliases:,} user aliases"
    if args.aliases:
        batch = [
            Alias(alias=f"user-alias-{number:06d}", repo=f"someone/other-{number % 997}-GGUF",
                  filename=f"other-{number}.Q4_K_M.gguf", source=Alias.Source.USER)
            for number in range(args.aliases)
        ]  # fmt: skip
        Alias.objects.bulk_create(batch, batch_size=2000)
        print(f"{args.aliases:,} user aliases added", flush=True)
        sync_rounds(alias_suffix)
        page_rounds(alias_suffix)

    lines = [
        f"Cache: {args.files:,} GGUF files in {args.repos} repos × {args.revisions} revisions "
        f"({generated:,} generated aliases); medians of {args.runs} runs. Each ratio is against scan_cache_dir's "
        "median in the same rounds.",
        "",
        "| step | median (s) | ratio to scan_cache_dir | queries | target |",
        "|---|---|---|---|---|",
    ]
    targets = {"first sync": "≤ 3×", "unchanged rescan": "≤ 1.5×"}
    for name, times in results.items():
        suffix = alias_suffix if name.endswith(alias_suffix) else ""
        base = statistics.median(results["scan_cache_dir" + suffix])
        median = statistics.median(times)
        ratio = "1.00 (baseline)" if name.startswith("scan_cache_dir") else f"{median / base:.2f}×"
        target = next((value for key, value in targets.items() if name.startswith(key)), "")
        lines.append(f"| {name} | {median:.3f} | {ratio} | {counts.get(name, '')} | {target} |")
    lines += [
        "",
        f"Pages at {args.files:,} files, signed in as a superuser with the test client; medians of "
        f"{args.page_runs} requests (target: no slower than the admin's changelist).",
        "",
        "| page | median (ms) | ratio to the admin changelist | queries |",
        "|---|---|---|---|",
    ]
    for suffix in ("", alias_suffix if args.aliases else None):
        if suffix is None:
            continue
        admin = statistics.median(page_results["admin changelist (100 rows)" + suffix])
        for name in pages:
            median = statistics.median(page_results[name + suffix])
            lines.append(
                f"| {name}{suffix} | {median * 1000:.1f} | {median / admin:.2f}× | {page_counts[name + suffix]} |"
            )
    lines += [
        "",
        f"One header with a 151,936-token vocabulary ({big_header.stat().st_size:,}-byte file, sparse after its "
        f"header): read_header() median {statistics.median(header_times) * 1000:.1f} ms of {args.page_runs}.",
    ]
    lines += ["", "All times (s): " + "; ".join(f"{k} {[round(t, 3) for t in v]}" for k, v in results.items()) + "."]
    report = "\n".join(lines)
    print(report)
    if args.write:
        command = "bench/cache_sync.py" + "".join(
            f" --{name.replace('_', '-')} {getattr(args, name)}"
            for name in ("files", "repos", "revisions", "runs", "aliases", "vocab")
        )
        append_section(
            args.write,
            title=f"Cache sync of {args.files:,} files ({time.strftime('%Y-%m-%d')}, database {database})",
            command=f".venv/bin/python {command}",
            body=report,
        )
    reset()
    Alias.objects.all().delete()
    get_user_model().objects.filter(pk=user.pk).delete()
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
