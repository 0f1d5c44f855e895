"""A shared cache works for everyone: what a worker pulls, huggingface_hub running as another Unix user reads.

The suite runs as root; the reader runs as `nobody` in a subprocess, on a cache in a temp folder of its own
(pytest's tmp_path is 0700, which no other user can enter). It runs the venv's python when that user may start it;
where the venv's interpreter lives in a folder only root can enter (root's home, for one), it runs the
system python of the same version with the venv's site-packages, so it is still the venv's huggingface_hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfiles import cache, services
from modelfiles.models import Download
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, pseudo_random

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

READER = "nobody"
READ_AS_OTHER_USER = """
import hashlib, json, sys
from huggingface_hub import hf_hub_download, try_to_load_from_cache
repo, filename = sys.argv[1], sys.argv[2]
path = hf_hub_download(repo, filename, local_files_only=True)
with open(path, "rb") as handle:
    digest = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps({"path": path, "sha256": digest, "cached": try_to_load_from_cache(repo, filename)}))
"""


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    from modelfiles.tasks import download_task

    monkeypatch.setattr(download_task, "delay", lambda download_id: None)


@pytest.fixture
def shared_home(hf_env, monkeypatch) -> Iterator[Path]:
    """HF_HOME in a folder every user can enter, as a shared cache on a real machine is."""
    folder = Path(tempfile.mkdtemp(prefix="modeldesk-shared-"))
    folder.chmod(0o755)
    home = folder / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    hf_env["HF_HOME"] = str(home)
    try:
        yield home
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pull() -> Download:
    download, _ = services.download_request(repo=REPO, filename=FILE, revision="main", by=None)
    result = services.download_run(download_id=download.pk, worker="test")
    assert result is not None and result.status == Download.Status.COMPLETED, result and result.error_message
    return result


def run_as(
    user: str, code: str, *args: str, env: dict[str, str], python: str = sys.executable
) -> subprocess.CompletedProcess:
    account = pwd.getpwnam(user)
    return subprocess.run(
        [python, "-c", code, *args],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def reader_python(user: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """An interpreter `user` can start that imports the venv's huggingface_hub, and the environment it needs."""
    try:
        if run_as(user, "import huggingface_hub", env=env).returncode == 0:
            return sys.executable, env
    except PermissionError:
        pass  # the venv's python links into a folder `user` cannot enter
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    assert system, f"{user} cannot start the venv's python and there is no system {version}"
    with_venv = {**env, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    probe = run_as(user, "import huggingface_hub", env=with_venv, python=system)
    assert probe.returncode == 0, f"{user} cannot import the venv's huggingface_hub: {probe.stderr}"
    return system, with_venv


def reader_env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def modes(root: Path) -> dict[str, int]:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if not path.is_symlink():
                found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_a_pulled_file_is_read_by_huggingface_hub_running_as_another_user(hub, shared_home):
    assert os.geteuid() == 0, "this test pulls as root and reads as another user"
    content = pseudo_random(200_000)
    hub.add_repo(REPO, files={FILE: content})
    python, env = reader_python(READER, reader_env(shared_home))

    pull()

    result = run_as(READER, READ_AS_OTHER_USER, REPO, FILE, env=env, python=python)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["sha256"] == hashlib.sha256(content).hexdigest()
    assert answer["cached"] == answer["path"]
    assert Path(answer["path"]).is_relative_to(shared_home / "hub")


def test_blobs_refs_and_folders_get_the_umask_modes_and_the_cache_is_tagged(hub, shared_home):
    hub.add_repo(REPO, files={FILE: pseudo_random(50_000)})
    previous = os.umask(0o022)
    try:
        pull()
    finally:
        os.umask(previous)
    repo = cache.repo_folder_name(REPO)
    found = modes(shared_home / "hub")
    assert found[f"{repo}/refs/main"] == 0o644
    [blob] = [name for name in found if name.startswith(f"{repo}/blobs/")]
    assert found[blob] == 0o644
    assert found[f"{repo}/snapshots"] == 0o755
    assert {mode for name, mode in found.items() if (shared_home / "hub" / name).is_dir()} == {0o755}
    tag = (shared_home / "hub" / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55\n")


def test_a_stricter_umask_is_honoured_as_huggingface_hub_does(hub, shared_home):
    hub.add_repo(REPO, files={FILE: pseudo_random(50_000)})
    previous = os.umask(0o027)
    try:
        pull()
    finally:
        os.umask(previous)
    found = modes(shared_home / "hub" / cache.repo_folder_name(REPO))
    assert found["refs/main"] == 0o640
    assert {mode for name, mode in found.items() if name.startswith("blobs/")} == {0o640}
