"""FakeHub against huggingface_hub itself, and its fault switches over raw HTTP.

No Django, no database. huggingface_hub reads HF_ENDPOINT at import time, so every call gets `endpoint=` explicitly;
its internal retries on 5xx take ~20 s, so 5xx/429 are only checked with raw HTTP.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import get_hf_file_metadata

from tests.hub.server import FakeHub, FakeHubProcess, Generated, generate_bytes, parse_size

REPO = "acme/tiny-llm-GGUF"
GGUF = "tiny-llm.Q4_K_M.gguf"
GGUF_BYTES = generate_bytes(300_000, seed="tiny")
README = b"# tiny llm\n"


@pytest.fixture(autouse=True)
def hf_env(monkeypatch, tmp_path):
    """No telemetry, no Xet, no token or cache from the developer's machine."""
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub():
    with FakeHub() as hub:
        hub.add_repo(REPO, files={GGUF: GGUF_BYTES, "README.md": README})
        yield hub


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def download(hub: FakeHub, cache: Path, filename: str = GGUF, repo_id: str = REPO, **kwargs) -> str:
    kwargs.setdefault("token", False)
    return hf_hub_download(repo_id, filename, endpoint=hub.endpoint, cache_dir=cache, **kwargs)


def raw_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---- downloads through huggingface_hub ----


def test_download_lfs_file_writes_standard_cache_layout(hub, cache):
    commit = hub.commit_sha(REPO)
    sha256 = hashlib.sha256(GGUF_BYTES).hexdigest()

    path = Path(download(hub, cache))

    repo_dir = cache / "models--acme--tiny-llm-GGUF"
    assert path == repo_dir / "snapshots" / commit / GGUF
    assert path.read_bytes() == GGUF_BYTES
    assert path.is_symlink() and os.readlink(path) == f"../../blobs/{sha256}"
    assert (repo_dir / "blobs" / sha256).read_bytes() == GGUF_BYTES
    assert (repo_dir / "refs" / "main").read_text() == commit
    assert try_to_load_from_cache(REPO, GGUF, cache_dir=cache) == str(path)

    info = scan_cache_dir(cache)
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.size_on_disk == len(GGUF_BYTES)
    (revision,) = repo.revisions
    assert revision.commit_hash == commit and revision.refs == {"main"}
    assert [f.file_name for f in revision.files] == [GGUF]
    assert not info.warnings


def test_head_metadata_and_non_lfs_etag(hub, cache):
    meta = get_hf_file_metadata(hub.url(REPO, GGUF))
    assert meta.etag == hashlib.sha256(GGUF_BYTES).hexdigest()
    assert meta.size == len(GGUF_BYTES) and meta.commit_hash == hub.commit_sha(REPO)

    path = Path(download(hub, cache, "README.md"))
    assert path.read_bytes() == README
    assert os.readlink(path) == f"../../blobs/{git_blob_id(README)}"
    head = raw_get(hub.url(REPO, "README.md"))
    assert head.headers["ETag"] == f'"{git_blob_id(README)}"' and "X-Linked-Etag" not in head.headers


def test_subfolder_file_generated_content_and_dry_run(hub, cache):
    hub.add_repo(REPO, files={"q8/tiny-llm.Q8_0.gguf": Generated(200_000)})
    dry = download(hub, cache, "q8/tiny-llm.Q8_0.gguf", dry_run=True)
    assert dry.file_size == 200_000 and dry.will_download

    path = Path(download(hub, cache, "q8/tiny-llm.Q8_0.gguf"))
    assert path.read_bytes() == generate_bytes(200_000, seed=f"{REPO}/q8/tiny-llm.Q8_0.gguf")
    assert os.readlink(path).startswith("../../../blobs/")


def test_file_from_disk_is_served_whole_and_by_range(hub, cache, tmp_path):
    disk = tmp_path / "big.gguf"
    data = generate_bytes(3 * 1024 * 1024 + 17, seed="disk")
    disk.write_bytes(data)
    hub.add_file_from_disk(REPO, "big.gguf", disk)

    assert Path(download(hub, cache, "big.gguf")).read_bytes() == data
    with raw_get(hub.url(REPO, "big.gguf"), {"Range": "bytes=1048570-"}) as r:
        assert r.status == 206 and r.read() == data[1048570:]
    assert hub.blob(REPO, "big.gguf").sha256 == hashlib.sha256(data).hexdigest()


def test_new_commit_branches_tags_and_pr_refs(hub, cache):
    first = hub.commit_sha(REPO)
    second = hub.add_repo(REPO, files={GGUF: b"v2" * 1000})
    assert second != first and hub.commit_sha(REPO) == second
    assert hub.blob(REPO, "README.md").read() == README  # other files carried over

    assert Path(download(hub, cache)).read_bytes() == b"v2" * 1000
    assert Path(download(hub, cache, revision=first)).read_bytes() == GGUF_BYTES

    pr = hub.add_repo(REPO, files={GGUF: b"pr"}, revision="refs/pr/1")
    hub.create_tag(REPO, "v1.0", revision=first)
    assert Path(download(hub, cache, revision="refs/pr/1")).read_bytes() == b"pr"
    assert Path(download(hub, cache, revision="v1.0")).read_bytes() == GGUF_BYTES
    assert hub.requests_for(GGUF, "HEAD")[-2].raw_path.startswith(f"/{REPO}/resolve/refs%2Fpr%2F1/")

    refs = HfApi(endpoint=hub.endpoint, token=False).list_repo_refs(REPO, include_pull_requests=True)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second)]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", pr)]


def test_snapshot_download(hub, tmp_path):
    hub.add_repo(REPO, files={"sub/config.json": b"{}"})
    folder = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=False))
    assert (folder / GGUF).read_bytes() == GGUF_BYTES
    assert (folder / "sub" / "config.json").read_bytes() == b"{}"


# ---- API ----


def test_list_repo_tree_recursive_and_paginated(hub):
    hub.page_size = 3
    hub.add_repo(REPO, files={f"q{i}/part-{j}.gguf": b"x" * (i + j + 1) for i in range(3) for j in range(2)})
    api = HfApi(endpoint=hub.endpoint, token=False)

    entries = list(api.list_repo_tree(REPO, recursive=True))
    paths = [e.path for e in entries]
    assert paths == [
        "README.md",
        "q0",
        "q0/part-0.gguf",
        "q0/part-1.gguf",
        "q1",
        "q1/part-0.gguf",
        "q1/part-1.gguf",
        "q2",
        "q2/part-0.gguf",
        "q2/part-1.gguf",
        GGUF,
    ]
    assert len([r for r in hub.requests if "/tree/" in r.path]) == 4  # 11 entries, 3 per page
    by_path = {e.path: e for e in entries}
    assert by_path["q1/part-1.gguf"].size == 3
    assert by_path["q1/part-1.gguf"].lfs.sha256 == hashlib.sha256(b"xxx").hexdigest()
    assert by_path["README.md"].blob_id == git_blob_id(README) and by_path["README.md"].lfs is None
    assert type(by_path["q0"]).__name__ == "RepoFolder"

    top = [e.path for e in api.list_repo_tree(REPO)]
    assert top == ["README.md", "q0", "q1", "q2", GGUF]
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="q2")] == ["q2/part-0.gguf", "q2/part-1.gguf"]
    expanded = list(api.list_repo_tree(REPO, path_in_repo="q2", expand=True))
    assert expanded[0].last_commit.oid == hub.commit_sha(REPO)


def test_model_info_and_paths_info(hub):
    hub.add_repo(REPO, info={"gguf": {"total": 1000, "architecture": "llama"}})
    api = HfApi(endpoint=hub.endpoint, token=False)
    info = api.model_info(REPO, files_metadata=True)
    assert info.id == REPO and info.sha == hub.commit_sha(REPO) and info.gated is False and info.private is False
    assert info.gguf == {"total": 1000, "architecture": "llama"} and "gguf" in info.tags
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings[GGUF].size == len(GGUF_BYTES)
    assert siblings[GGUF].lfs.sha256 == hashlib.sha256(GGUF_BYTES).hexdigest()
    assert siblings["README.md"].lfs is None and siblings["README.md"].blob_id == git_blob_id(README)

    old = hub.commit_sha(REPO)
    hub.add_repo(REPO, files={"extra.txt": b"e"})
    assert api.model_info(REPO, revision=old).sha == old
    assert [s.rfilename for s in api.model_info(REPO).siblings] == ["README.md", "extra.txt", GGUF]

    paths = api.get_paths_info(REPO, [GGUF, "missing.bin", "README.md"])
    assert [(p.path, p.size) for p in paths] == [(GGUF, len(GGUF_BYTES)), ("README.md", len(README))]


# ---- errors ----


def test_missing_repo_revision_and_file(hub, cache):
    api = HfApi(endpoint=hub.endpoint, token=False)
    with pytest.raises(RepositoryNotFoundError) as exc:
        download(hub, cache, repo_id="acme/nope")
    assert exc.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")

    with pytest.raises(RevisionNotFoundError):
        download(hub, cache, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_tree(REPO, revision="no-such-branch").__next__()

    with pytest.raises(RemoteEntryNotFoundError) as exc:
        download(hub, cache, "nope.gguf")
    commit = exc.value.response.headers["X-Repo-Commit"]
    assert commit == hub.commit_sha(REPO)
    assert (cache / "models--acme--tiny-llm-GGUF" / ".no_exist" / commit / "nope.gguf").exists()


def test_private_repo(hub, cache):
    hub.add_repo("acme/secret", files={GGUF: b"s"}, private=True, granted_tokens={"hf_good"})
    hub.tokens.add("hf_other")
    with pytest.raises(RepositoryNotFoundError) as exc:
        download(hub, cache, repo_id="acme/secret")
    assert exc.value.response.status_code == 401
    assert exc.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError) as exc:
        download(hub, cache, repo_id="acme/secret", token="hf_other")
    assert exc.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).model_info("acme/secret")

    assert Path(download(hub, cache, repo_id="acme/secret", token="hf_good")).read_bytes() == b"s"
    assert HfApi(endpoint=hub.endpoint, token="hf_good").model_info("acme/secret").private is True


def test_gated_repo(hub, cache):
    hub.add_repo("acme/gated", files={GGUF: b"g"}, gated=True, granted_tokens={"hf_good"})
    hub.tokens.add("hf_other")
    with pytest.raises(GatedRepoError) as exc:
        download(hub, cache, repo_id="acme/gated")
    assert exc.value.response.status_code == 401
    assert "restricted" in exc.value.response.headers["X-Error-Message"]
    with pytest.raises(GatedRepoError) as exc:
        download(hub, cache, repo_id="acme/gated", token="hf_other")
    assert exc.value.response.status_code == 403

    # The repo's metadata stays public, as on the Hub; GET errors carry a JSON body.
    assert HfApi(endpoint=hub.endpoint, token=False).model_info("acme/gated").gated == "auto"
    with pytest.raises(urllib.error.HTTPError) as http_error:
        raw_get(hub.url("acme/gated", GGUF))
    assert http_error.value.code == 401 and b"restricted" in http_error.value.read()

    assert Path(download(hub, cache, repo_id="acme/gated", token="hf_good")).read_bytes() == b"g"


def test_invalid_token_is_rejected_everywhere(hub, cache):
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=hub.endpoint, token="hf_unknown").model_info(REPO)
    assert exc.value.response.status_code == 401
    assert not isinstance(exc.value, RepositoryNotFoundError)
    hub.tokens.add("hf_good")
    assert HfApi(endpoint=hub.endpoint, token="hf_good").whoami()["name"] == "fakehub-user"


def test_agent_harnesses_is_404(hub):
    with pytest.raises(urllib.error.HTTPError) as exc:
        raw_get(f"{hub.endpoint}/api/agent-harnesses")
    assert exc.value.code == 404


# ---- raw HTTP: ranges, keep-alive, CDN redirect ----


def test_ranges_and_keep_alive(hub):
    size = len(GGUF_BYTES)
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
    path = f"/{REPO}/resolve/main/{GGUF}"

    def get(range_header: str | None) -> http.client.HTTPResponse:
        conn.request("GET", path, headers={"Range": range_header} if range_header else {})
        return conn.getresponse()

    r = get("bytes=1000-")
    assert r.status == 206 and r.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert r.read() == GGUF_BYTES[1000:]
    r = get("bytes=10-19")
    assert r.status == 206 and r.headers["Content-Length"] == "10" and r.read() == GGUF_BYTES[10:20]
    r = get("bytes=-5")
    assert r.status == 206 and r.read() == GGUF_BYTES[-5:]
    r = get(f"bytes={size}-")
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r.read()
    r = get(None)
    assert r.status == 200 and r.headers["Accept-Ranges"] == "bytes" and r.read() == GGUF_BYTES
    conn.request("HEAD", f"/{REPO}/resolve/main/missing.gguf")
    r = conn.getresponse()
    assert r.status == 404 and r.headers["X-Error-Code"] == "EntryNotFound" and r.read() == b""
    conn.close()

    records = hub.requests_for(GGUF, "GET")
    assert len({r.client for r in records}) == 1  # one keep-alive connection
    assert hub.range_requests(GGUF) == ["bytes=1000-", "bytes=10-19", "bytes=-5", f"bytes={size}-"]
    assert hub.bytes_sent_for(GGUF) == (size - 1000) + 10 + 5 + size


def test_cdn_redirect(hub, cache):
    hub.cdn_redirect = True
    hub.tokens.add("hf_good")
    path = Path(download(hub, cache, token="hf_good"))
    assert path.read_bytes() == GGUF_BYTES

    head, get = hub.requests_for(GGUF)
    assert (head.method, head.route, head.status) == ("HEAD", "resolve", 302)
    assert (get.method, get.route, get.status, get.server) == ("GET", "cdn", 200, "cdn")
    assert "authorization" in head.headers and "authorization" not in get.headers
    assert hub.bytes_sent_for(GGUF) == len(GGUF_BYTES)

    # urllib follows the 302 itself; non-LFS files are served directly.
    with raw_get(hub.url(REPO, GGUF)) as r:
        assert r.url.startswith(hub.cdn_endpoint) and r.read() == GGUF_BYTES
    with raw_get(hub.url(REPO, "README.md")) as r:
        assert r.url == hub.url(REPO, "README.md")

    hub.cdn_url_ttl = -1  # signed urls already expired
    with pytest.raises(urllib.error.HTTPError) as exc:
        raw_get(hub.url(REPO, GGUF))
    assert exc.value.code == 403


# ---- faults ----


def test_drop_after_bytes_breaks_a_raw_read_once(hub):
    rule = hub.faults.set(drop_after_bytes=1000, times=1)
    with raw_get(hub.url(REPO, GGUF)) as r, pytest.raises(http.client.IncompleteRead) as exc:
        r.read()
    assert len(exc.value.partial) == 1000
    assert rule.hits == 1 and rule.remaining == 0
    with raw_get(hub.url(REPO, GGUF)) as r:
        assert r.read() == GGUF_BYTES
    assert hub.bytes_sent_for(GGUF) == 1000 + len(GGUF_BYTES)


def test_hf_hub_download_resumes_with_range_after_a_drop(hub, cache):
    # huggingface_hub keeps only whole 10 MiB chunks of an interrupted GET, then asks for the rest with Range.
    size, chunk = 11 * 1024 * 1024, constants.DOWNLOAD_CHUNK_SIZE
    hub.add_generated_file(REPO, "big.gguf", size)
    hub.faults.set(drop_after_bytes=chunk + 5000, times=1, path="big.gguf")
    path = Path(download(hub, cache, "big.gguf"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.blob(REPO, "big.gguf").sha256
    assert hub.range_requests("big.gguf") == [f"bytes={chunk}-"]
    assert hub.bytes_sent_for("big.gguf") == size + 5000


def test_stall_makes_a_reader_time_out(hub):
    hub.faults.set(stall_after_bytes=100, stall_seconds=30)
    r = raw_get(hub.url(REPO, GGUF), timeout=0.5)
    assert r.read(100) == GGUF_BYTES[:100]
    with pytest.raises((TimeoutError, socket.timeout)):
        r.read(1)
    r.close()


def test_status_503_and_429(hub):
    hub.faults.set(status_503=2)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as exc:
            raw_get(hub.url(REPO, GGUF))
        assert exc.value.code == 503
    with raw_get(hub.url(REPO, GGUF)) as r:
        assert r.status == 200

    hub.faults.set(status_429=1, routes=("api",))
    with pytest.raises(urllib.error.HTTPError) as exc:
        raw_get(f"{hub.endpoint}/api/models/{REPO}")
    assert exc.value.code == 429 and exc.value.headers["Retry-After"] == "1"
    assert [r.status for r in hub.requests] == [503, 503, 200, 429]


def test_corrupt_flips_bytes_but_keeps_headers(hub):
    hub.faults.set(corrupt=True)
    with raw_get(hub.url(REPO, GGUF)) as r:
        body = r.read()
        assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(GGUF_BYTES).hexdigest()}"'
    assert len(body) == len(GGUF_BYTES) and body != GGUF_BYTES
    assert body[0] != GGUF_BYTES[0] and body[1:1024] == GGUF_BYTES[1:1024]
    hub.faults.clear()
    with raw_get(hub.url(REPO, GGUF)) as r:
        assert r.read() == GGUF_BYTES


def test_throttle(hub):
    hub.faults.set(throttle_bytes_per_second=1_000_000)
    started = time.monotonic()
    with raw_get(hub.url(REPO, GGUF)) as r:
        assert r.read() == GGUF_BYTES
    assert time.monotonic() - started >= 0.25  # 300 kB at 1 MB/s


def test_delay_before_answering_a_head(hub):
    hub.faults.set(delay_seconds=0.3, methods=("HEAD",), times=1)
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        urllib.request.urlopen(urllib.request.Request(hub.url(REPO, GGUF), method="HEAD"), timeout=0.1)
    assert time.monotonic() - started < 0.3
    with urllib.request.urlopen(urllib.request.Request(hub.url(REPO, GGUF), method="HEAD"), timeout=5) as r:
        assert r.headers["X-Repo-Commit"] == hub.commit_sha(REPO)


# ---- separate process ----


def test_standalone_process(tmp_path):
    with FakeHubProcess(["acme/bench:model.Q4_K_M.gguf:64KiB"], data_dir=tmp_path / "data") as proc:
        info = proc.manifest["repos"]["acme/bench"]["files"]["model.Q4_K_M.gguf"]
        with raw_get(info["url"]) as r:
            body = r.read()
            assert r.headers["X-Linked-Size"] == str(64 * 1024)
        assert body == generate_bytes(64 * 1024, seed="acme/bench/model.Q4_K_M.gguf")
        assert hashlib.sha256(body).hexdigest() == info["sha256"]

        proc.set_faults(drop_after_bytes=10, times=1)
        with raw_get(info["url"]) as r, pytest.raises(http.client.IncompleteRead):
            r.read()
        assert [(r["method"], r["bytes_sent"]) for r in proc.requests()] == [("GET", 64 * 1024), ("GET", 10)]
        assert proc.proc.poll() is None
        pid_proc = proc.proc
    assert pid_proc.poll() is not None


def test_parse_size():
    assert parse_size("1024") == 1024
    assert parse_size("64KiB") == 65536
    assert parse_size("5MB") == 5_000_000
    assert parse_size("1G") == parse_size("1GiB") == 1 << 30


def test_huggingface_hub_version():
    assert huggingface_hub.__version__.startswith("2.")


def test_header_overrides_make_the_hub_answer_like_a_hostile_mirror(hub):
    hub.override_headers({"X-Linked-Etag": None, "ETag": '"../../../x"', "X-Repo-Commit": "a/b"}, path=GGUF)
    meta = get_hf_file_metadata(hub.url(REPO, GGUF), token=False, endpoint=hub.endpoint)
    assert (meta.etag, meta.commit_hash) == ("../../../x", "a/b")
    # GETs carry the same headers; other files keep their own.
    with raw_get(hub.url(REPO, GGUF)) as response:
        assert response.headers["ETag"] == '"../../../x"'
        assert "X-Linked-Etag" not in response.headers
    assert get_hf_file_metadata(hub.url(REPO, "README.md"), token=False, endpoint=hub.endpoint).etag == git_blob_id(
        README
    )
    hub.clear_header_overrides()
    meta = get_hf_file_metadata(hub.url(REPO, GGUF), token=False, endpoint=hub.endpoint)
    assert meta.etag == hashlib.sha256(GGUF_BYTES).hexdigest()
