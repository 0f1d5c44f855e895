"""A scan never fails as a whole: entries we cannot represent are skipped and reported, the rest lands.

The cache is built on disk the way other tools (hf, llama.cpp, a copy by hand) could leave it; the scan runs
through the page's Rescan button, `POST /api/modelfiles/scan` and `manage.py scan_cache`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from modelfiles import services
from modelfiles.models import CacheScan, ModelFile
from tests.api_errors import assert_error
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file
from tests.modelfiles.test_pages import messages_of

pytestmark = pytest.mark.django_db

FILES_URL = reverse("modelfiles:list")
RESCAN_URL = reverse("modelfiles:rescan")
SCAN_API = "/api/modelfiles/scan"
REPO = "acme/Tiny-GGUF"
FOLDER = "models--acme--Tiny-GGUF"


def repo_root(hf_home: Path, repo: str = REPO) -> Path:
    return hf_home / "hub" / ("models--" + repo.replace("/", "--"))


def add_link(hf_home: Path, name: bytes, *, commit: str = COMMIT, content: bytes | None = b"GGUF\x00x") -> None:
    """A snapshot entry with any bytes as its name (bytes paths: the name need not be UTF-8)."""
    root = repo_root(hf_home)
    etag = hashlib.sha256(content or name).hexdigest()
    if content is not None:
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "blobs" / etag).write_bytes(content)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    depth = name.count(b"/")
    link = os.fsencode(snapshot) + b"/" + name
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(b"../" * (2 + depth) + b"blobs/" + etag.encode(), link)


@pytest.fixture
def messy_cache(hf_home: Path) -> dict[str, str]:
    """One good file and one of each entry we cannot represent; {path in the report: words of its reason}."""
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    add_link(hf_home, b"back\\slash.Q4_K_M.gguf", content=b"GGUF\x00a")
    add_link(hf_home, b"latin1-\xe9.Q4_K_M.gguf", content=b"GGUF\x00b")
    add_link(hf_home, b"line\nbreak.Q4_K_M.gguf", content=b"GGUF\x00c")
    add_link(hf_home, b"a" * 200 + b"/" + b"b" * 100 + b".gguf", content=b"GGUF\x00d")
    add_link(hf_home, b"broken.Q4_K_M.gguf", content=None)
    not_a_commit = repo_root(hf_home) / "snapshots" / "not-a-commit"
    not_a_commit.mkdir(parents=True)
    (not_a_commit / "x.gguf").write_bytes(b"GGUF")
    (repo_root(hf_home) / "refs" / "odd").write_bytes(b"\xff\xfe")
    cache_file(hf_home, "acme/Other-GGUF", "other.Q8_0.gguf", commit=OTHER_COMMIT)
    bad_repo = hf_home / "hub" / "models--a--b--c"
    bad_repo.mkdir(parents=True)
    return {
        f"{FOLDER}/snapshots/{COMMIT}/back\\slash.Q4_K_M.gguf": "backslash",
        f"{FOLDER}/snapshots/{COMMIT}/latin1-\\xe9.Q4_K_M.gguf": "not valid UTF-8",
        f"{FOLDER}/snapshots/{COMMIT}/line\\nbreak.Q4_K_M.gguf": "control",
        f"{FOLDER}/snapshots/{COMMIT}/{'a' * 200}/{'b' * 100}.gguf": "longer than 255",
        f"{FOLDER}/snapshots/{COMMIT}/broken.Q4_K_M.gguf": "broken link",
        f"{FOLDER}/snapshots/not-a-commit": "40-hex commit",
        f"{FOLDER}/refs/odd": "ref cannot be read",
        "models--a--b--c": "not a valid repo id",
    }


def assert_reported(skipped: list[dict], expected: dict[str, str]) -> None:
    reasons = {entry["path"]: entry["reason"] for entry in skipped}
    assert set(reasons) == set(expected)
    for path, words in expected.items():
        assert words in reasons[path], (path, reasons[path])


def test_rescan_lands_the_good_files_and_reports_the_rest(operator_client, messy_cache):
    response = operator_client.post(RESCAN_URL)

    assert response.status_code == 302
    assert messages_of(response) == [
        "Rescanned the cache: 2 new, 0 gone, 2 files.",
        "8 cache entries could not be listed and were skipped; see the list on the model files page.",
    ]
    listed = set(ModelFile.objects.filter(present=True).values_list("repo", "filename"))
    assert listed == {(REPO, "tiny.Q4_K_M.gguf"), ("acme/Other-GGUF", "other.Q8_0.gguf")}
    page = operator_client.get(FILES_URL).content.decode()
    assert 'id="scan-skipped"' in page
    assert "skipped\n    8 entries" in page
    assert "back\\slash.Q4_K_M.gguf</code>: the name holds a backslash" in page
    assert "latin1-\\xe9.Q4_K_M.gguf" in page


def test_the_latest_report_is_shown_to_everyone_until_a_clean_scan(client_for, viewer, messy_cache, hf_home):
    services.modelfile_sync()
    page = client_for(viewer).get(FILES_URL).content.decode()
    assert 'id="scan-skipped"' in page and "broken.Q4_K_M.gguf" in page

    for path in (repo_root(hf_home), hf_home / "hub" / "models--a--b--c"):
        for folder, dirs, files in os.walk(path, topdown=False):
            for name in files + dirs:
                full = os.path.join(folder, name)
                os.rmdir(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
        os.rmdir(path)
    counts = services.modelfile_sync()
    assert counts["skipped"] == []
    assert 'id="scan-skipped"' not in client_for(viewer).get(FILES_URL).content.decode()


def test_a_one_repo_scan_keeps_the_other_repos_problems(messy_cache, hf_home):
    services.modelfile_sync()
    cache_file(hf_home, "acme/Other-GGUF", "second.Q8_0.gguf", commit=OTHER_COMMIT, content=b"GGUF\x00other2")
    counts = services.modelfile_sync(repo="acme/Other-GGUF")  # what a finished download runs
    assert (counts["created"], counts["skipped"]) == (1, [])
    report = CacheScan.objects.get()
    assert report.skipped_total == len(messy_cache)
    assert_reported(report.skipped, messy_cache)


def test_scan_api_answers_counts_and_skipped_entries(operator_client, messy_cache):
    response = operator_client.post(SCAN_API)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"created", "updated", "removed", "present", "skipped"}
    assert (body["created"], body["updated"], body["removed"], body["present"]) == (2, 0, 0, 2)
    assert_reported(body["skipped"], messy_cache)
    for entry in body["skipped"]:
        assert set(entry) == {"path", "reason"}


def test_scan_api_is_for_operators_and_admins(client, viewer_client, editor_client, client_for, admin_user):
    assert_error(client.post(SCAN_API), 401, "authentication_error")
    assert_error(viewer_client.post(SCAN_API), 403, "forbidden_error")
    assert_error(editor_client.post(SCAN_API), 403, "forbidden_error")
    assert client_for(admin_user).post(SCAN_API).status_code == 200
    assert_error(client_for(admin_user).get(SCAN_API), 405, "invalid_request_error")


def test_scan_api_is_in_the_schema(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/modelfiles/scan"]["post"]
    # 413 and 429 can answer any API request (body limit, bearer-token throttle), so every operation lists them.
    assert set(operation["responses"]) == {"200", "401", "403", "413", "429"}
    result = schema["components"]["schemas"]["ScanResult"]
    assert set(result["required"]) == {"created", "updated", "removed", "present", "skipped"}
    skipped = schema["components"]["schemas"]["ScanSkipped"]
    assert set(skipped["properties"]) == {"path", "reason"}


def test_scan_cache_command_prints_the_skipped_paths_and_why(messy_cache):
    out = io.StringIO()
    call_command("scan_cache", stdout=out)
    text = out.getvalue()
    assert "2 GGUF file(s); 2 new, 0 changed, 0 gone." in text
    assert "Skipped 8 entries" in text
    assert f"  {FOLDER}/snapshots/{COMMIT}/broken.Q4_K_M.gguf: broken link" in text
    assert "  models--a--b--c: the folder name is not a valid repo id" in text


def test_a_file_that_loses_its_blob_is_gone_and_reported(operator_client, hf_home):
    link = cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf")
    services.modelfile_sync()
    link.resolve().unlink()  # another tool deleted the blob, not the link
    counts = services.modelfile_sync()
    assert counts["removed"] == 1
    [entry] = counts["skipped"]
    assert entry["reason"].startswith("broken link")
    assert not ModelFile.objects.filter(present=True).exists()
