"""Split models (`x-00001-of-00003.gguf`): a pull of any part is one download of the whole set.

Against the test Hub; the end-to-end test uses a real Celery worker, the others run the task body
(`download_run`) in this process, as test_downloads.py does.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time

import pytest
from django.core.management import call_command
from django.urls import reverse
from huggingface_hub import hf_hub_download

from aliases.models import Alias
from config.formatting import human_size
from config.wrapping import wrap_name
from modelfiles import cache, services
from modelfiles.cache import PARTIAL_SUFFIX, RepoPaths, local_file
from modelfiles.models import Download, ModelFile
from tests.gguf_files import tiny_gguf
from tests.modelfiles.hubfixtures import REPO, hf_env, hub, hub_cache, pseudo_random, sha256_of
from tests.workers import celery_worker, wait_for_download

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "big.Q4_K_M"
COUNT = 3
PART_SIZE = 1_500_000
PULL_URL = reverse("modelfiles:pull")
FILES_URL = reverse("modelfiles:pull-files")


def part_name(number: int, count: int = COUNT) -> str:
    return f"{PREFIX}-{number:05d}-of-{count:05d}.gguf"


def part_content(number: int, count: int = COUNT, size: int = PART_SIZE) -> bytes:
    """A real GGUF part header (its split.no / split.count keys) and filler after the tensor data."""
    header = tiny_gguf(split=(number, count), seed=number)
    return header + pseudo_random(size - len(header), seed=100 + number)


def add_set(hub, numbers=range(1, COUNT + 1)) -> dict[str, bytes]:
    files = {part_name(number): part_content(number) for number in numbers}
    hub.add_repo(REPO, files=files)
    return files


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """For the in-process tests: record what would go to the broker instead of sending it."""
    from modelfiles.tasks import download_task

    sent: list[str] = []
    monkeypatch.setattr(download_task, "delay", sent.append)
    return sent


def gets(hub, filename: str) -> int:
    return len(hub.requests_for(filename, "GET"))


def wait_for_row(download_id, predicate, seconds: float = 60.0):
    return wait_for_download(download_id, predicate, seconds, every=0.05)


@pytest.mark.worker
def test_a_pull_of_part_2_through_the_api_is_one_download_of_the_whole_set(hub, hf_env, client_for, operator):
    files = add_set(hub)
    total = sum(len(content) for content in files.values())
    # Slow enough to watch the progress move across parts and to ask again while it runs.
    hub.faults.set(throttle_bytes_per_second=2_000_000)
    client = client_for(operator)
    seen: list[tuple[int, int | None]] = []
    with celery_worker(extra_env=hf_env):
        response = client.post("/api/modelfiles/pull", {"repo": REPO, "filename": part_name(2)},
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["filename"], body["parts"], body["bytes_total"]) == (part_name(1), COUNT, total)
        # Another part of the same set while it runs: the same download, not a second one.
        again = client.post("/api/modelfiles/pull", {"repo": REPO, "filename": part_name(3)},
                            content_type="application/json")  # fmt: skip
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get(f"/api/modelfiles/status/{body['id']}").json()
            seen.append((status["bytes_done"], status["bytes_total"]))
            if status["status"] not in ("queued", "downloading", "verifying"):
                break
            time.sleep(0.1)
        # The worker rescans the repo right after the row completes: let it finish before it is stopped.
        deadline = time.monotonic() + 20
        while not Alias.objects.filter(source=Alias.Source.MODEL).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert status["status"] == "completed", status
    assert (status["bytes_done"], status["bytes_total"], status["parts"], status["percent"]) == (
        total,
        total,
        COUNT,
        100.0,
    )
    assert status["verified"] == "sha256"
    assert Download.objects.count() == 1
    # The progress is the set's: it never goes back, never passes the total, and runs past the first part.
    done = [value for value, _ in seen]
    assert done == sorted(done) and all(value <= total for value in done)
    assert all(seen_total in (None, total) for _, seen_total in seen)
    assert any(PART_SIZE < value < total for value in done), seen
    for name, content in files.items():
        assert sha256_of(local_file(REPO, name, "main")) == hashlib.sha256(content).hexdigest()
    rows = {row.filename: row for row in ModelFile.objects.filter(repo=REPO, present=True)}
    assert {name: (row.state, row.split_present) for name, row in rows.items()} == {
        name: ("ok", COUNT) for name in files
    }
    generated = Alias.objects.get(source=Alias.Source.MODEL, repo=REPO)
    assert generated.filename == part_name(1)


def test_a_set_with_one_part_already_local_fetches_only_the_others(hub, hf_env, enqueued):
    files = add_set(hub)
    hf_hub_download(
        REPO, part_name(2), cache_dir=hub_cache(hf_env), endpoint=hub.endpoint
    )  # another tool brought part 2 already
    assert gets(hub, part_name(2)) == 1
    download, created = services.download_request(repo=REPO, filename=part_name(3), revision="main", by=None)
    assert created and download.filename == part_name(1) and download.parts == COUNT
    result = services.download_run(download_id=download.pk, worker="test")
    assert result.status == Download.Status.COMPLETED, result.error_message
    assert gets(hub, part_name(2)) == 1  # not fetched again
    assert gets(hub, part_name(1)) == 1 and gets(hub, part_name(3)) == 1
    assert result.bytes_total == result.bytes_done == sum(len(content) for content in files.values())
    for name in files:
        assert local_file(REPO, name, "main") is not None
    # Now every part is here: a pull of any of them has nothing to do.
    with pytest.raises(services.AlreadyLocal):
        services.download_request(repo=REPO, filename=part_name(2), revision="main", by=None)


def test_a_set_with_a_part_missing_locally_is_pulled_not_already_local(hub, hf_env, enqueued):
    add_set(hub)
    hf_hub_download(REPO, part_name(1), cache_dir=hub_cache(hf_env), endpoint=hub.endpoint)
    download, created = services.download_request(repo=REPO, filename=part_name(1), revision="main", by=None)
    assert created and download.parts == COUNT


def test_a_part_missing_on_the_hub_is_refused_by_the_preflight(hub, hf_env, enqueued, operator_client):
    add_set(hub, numbers=(1, 3))
    response = operator_client.post("/api/modelfiles/pull", {"repo": REPO, "filename": part_name(1)},
                                    content_type="application/json")  # fmt: skip
    assert response.status_code == 404, response.content
    error = response.json()["error"]
    assert error["code"] == "file_not_found" and error["param"] == "filename"
    assert "Part 2 of 3" in error["message"] and part_name(2) in error["message"]
    assert not Download.objects.exists() and not enqueued


def test_the_space_check_counts_the_whole_set(hub, hf_env, enqueued):
    add_set(hub)
    free = cache.free_bytes(hub_cache(hf_env).parent)
    # Each part alone would fit; the three together do not.
    for number in range(1, COUNT + 1):
        hub.override_headers({"X-Linked-Size": str(free // 2)}, path=part_name(number))
    with pytest.raises(services.PullRefused) as refused:
        services.download_request(repo=REPO, filename=part_name(2), revision="main", by=None)
    assert refused.value.error_code == "insufficient_space"
    assert f"{part_name(1)} (3 parts" in refused.value.reason
    assert not Download.objects.exists()


def test_a_corrupt_part_fails_the_row_naming_it_and_leaves_nothing_half_visible(hub, hf_env, enqueued):
    files = add_set(hub)
    hub.faults.set(corrupt=True, path=part_name(2))
    download, _ = services.download_request(repo=REPO, filename=part_name(1), revision="main", by=None)
    result = services.download_run(download_id=download.pk, worker="test")
    assert result.status == Download.Status.FAILED
    assert result.error_code == "checksum_mismatch"
    assert result.error_message.startswith(f"Part 2 of 3 ({part_name(2)}): ")
    assert result.part == 2
    paths = RepoPaths.for_repo(REPO)
    commit = hub.commit_sha(REPO)
    # The damaged bytes are gone, nothing links to them, and `main` does not point at a half set.
    assert not paths.snapshot_file(commit, part_name(2)).exists()
    assert not paths.blob(hub.blob(REPO, part_name(2)).sha256).exists()
    assert not list(paths.blobs.glob(f"*{PARTIAL_SUFFIX}"))
    assert not paths.ref("main").exists()
    assert all(local_file(REPO, name, "main") is None for name in files)
    assert not Alias.objects.filter(source=Alias.Source.MODEL).exists()

    # Retry works on the set: the verified part 1 is kept, the rest comes.
    hub.faults.clear()
    _, requeued = services.download_retry(download=result, by=None)
    assert requeued
    result = services.download_run(download_id=download.pk, worker="test")
    assert result.status == Download.Status.COMPLETED, result.error_message
    assert gets(hub, part_name(1)) == 1
    assert all(local_file(REPO, name, "main") is not None for name in files)
    assert Alias.objects.get(source=Alias.Source.MODEL).filename == part_name(1)


def test_progress_is_combined_across_the_parts(hub, hf_env, enqueued):
    files = add_set(hub)
    total = sum(len(content) for content in files.values())
    hub.faults.set(throttle_bytes_per_second=1_000_000)
    download, _ = services.download_request(repo=REPO, filename=part_name(2), revision="main", by=None)
    assert download.bytes_total == total  # known from the pre-flight, before any byte
    reports = []
    result = services.download_run(download_id=download.pk, worker="test", on_progress=reports.append)
    assert result.status == Download.Status.COMPLETED, result.error_message
    done = [report.bytes_done for report in reports]
    assert done == sorted(done) and all(value <= total for value in done)
    assert {report.bytes_total for report in reports} == {total}
    assert any(value > 2 * PART_SIZE for value in done), done
    assert all(report.eta is None or report.eta <= (total - report.bytes_done) / report.speed + 1e-6
               for report in reports if report.speed)  # fmt: skip
    assert result.bytes_done == total and result.part is None


def test_a_dropped_connection_in_a_later_part_resumes_that_part_and_progress_never_goes_back(hub, hf_env, enqueued):
    files = add_set(hub)
    total = sum(len(content) for content in files.values())
    hub.faults.set(drop_after_bytes=600_000, times=1, path=part_name(2))
    download, _ = services.download_request(repo=REPO, filename=part_name(1), revision="main", by=None)
    reports = []
    result = services.download_run(download_id=download.pk, worker="test", on_progress=reports.append)
    assert result.status == Download.Status.COMPLETED, result.error_message
    assert result.attempts == 2
    done = [report.bytes_done for report in reports]
    assert done == sorted(done) and max(done) <= total
    # The retry did not fetch part 1 again and continued part 2 from the bytes it had.
    assert gets(hub, part_name(1)) == 1
    assert hub.range_requests(part_name(2)) == ["bytes=600000-"]
    assert sha256_of(local_file(REPO, part_name(2), "main")) == hashlib.sha256(files[part_name(2)]).hexdigest()


def test_a_part_gone_from_the_hub_by_the_time_the_worker_runs_fails_the_row_naming_it(hub, hf_env, enqueued):
    add_set(hub)
    download, _ = services.download_request(repo=REPO, filename=part_name(1), revision="main", by=None)
    hub.delete_files(REPO, [part_name(3)])
    result = services.download_run(download_id=download.pk, worker="test")
    assert (result.status, result.error_code) == (Download.Status.FAILED, "file_not_found")
    assert result.error_message.startswith(f"Part 3 of 3 ({part_name(3)}): {part_name(3)} does not exist")
    assert gets(hub, part_name(1)) == 0  # every part is asked about before any byte moves


def test_a_cancel_stops_the_set_and_a_retry_continues_it(hub, hf_env, enqueued):
    files = add_set(hub)
    hub.faults.set(throttle_bytes_per_second=1_000_000)
    download, _ = services.download_request(repo=REPO, filename=part_name(1), revision="main", by=None)
    results = []
    worker = threading.Thread(target=lambda: results.append(services.download_run(download_id=download.pk)))
    worker.start()
    try:
        wait_for_row(download.pk, lambda row: (row.part or 0) >= 2)
        assert services.download_cancel(download=download, by=None)
    finally:
        worker.join(30)
    assert results and results[0].status == Download.Status.CANCELLED
    assert local_file(REPO, part_name(3), hub.commit_sha(REPO)) is None
    hub.faults.clear()
    services.download_retry(download=results[0], by=None)
    result = services.download_run(download_id=download.pk)
    assert result.status == Download.Status.COMPLETED, result.error_message
    assert gets(hub, part_name(1)) == 1  # part 1 was whole before the cancel: not fetched again
    assert all(local_file(REPO, name, "main") is not None for name in files)


# --- how the pages, the API and the command show a set ------------------------------------------------------------


def repo_file_rows(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-repo-file="([^"]+)" data-state="([^"]+)"', html))


def test_the_repo_file_list_shows_a_split_set_as_one_entry_with_its_total_size(hub, hf_env, operator_client):
    files = add_set(hub)
    hub.add_repo(REPO, files={"single.Q8_0.gguf": part_content(1, size=2000)})
    hf_hub_download(REPO, part_name(2), cache_dir=hub_cache(hf_env), endpoint=hub.endpoint)
    response = operator_client.get(FILES_URL, {"repo": REPO, "revision": "main"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    # One entry for the set, named by part 1; one part local is not the set local.
    assert repo_file_rows(html) == {part_name(1): "remote", "single.Q8_0.gguf": "remote"}
    assert 'data-split-parts="3"' in html and "split model, 3 parts" in html
    total = sum(len(content) for content in files.values())
    assert human_size(total) in html
    assert f'data-pull-filename="{part_name(1)}"' in html

    for number in (1, 3):
        hf_hub_download(REPO, part_name(number), cache_dir=hub_cache(hf_env), endpoint=hub.endpoint)
    html = operator_client.get(FILES_URL, {"repo": REPO}, HTTP_HX_REQUEST="true").content.decode()
    assert repo_file_rows(html)[part_name(1)] == "local"


def test_the_repo_file_list_says_when_a_part_is_missing_on_the_hub(hub, hf_env, operator_client):
    add_set(hub, numbers=(1, 3))
    html = operator_client.get(FILES_URL, {"repo": REPO}, HTTP_HX_REQUEST="true").content.decode()
    assert list(repo_file_rows(html)) == [part_name(1)]
    assert "Only 2 of its 3 parts are on the Hub" in html
    assert "data-pull-filename" not in html  # nothing to pull whole


def test_the_pull_form_queues_the_set_and_the_downloads_page_shows_it(hub, hf_env, enqueued, operator_client):
    files = add_set(hub)
    total = sum(len(content) for content in files.values())
    response = operator_client.post(PULL_URL, {"repo": REPO, "filename": part_name(3), "revision": "main"},
                                    follow=True)  # fmt: skip
    html = response.content.decode()
    assert f"Queued {REPO}/{part_name(1)}@main (3 parts, {human_size(total)})." in html
    download = Download.objects.get()
    assert (download.filename, download.parts, download.bytes_total) == (part_name(1), COUNT, total)
    page = operator_client.get(reverse("modelfiles:downloads")).content.decode()
    assert 'data-field="parts"' in page and "3 parts" in page
    services.download_run(download_id=download.pk, worker="test")
    history = operator_client.get(reverse("modelfiles:downloads")).content.decode()
    # History wraps the name at its separators (config/wrapping.py).
    assert f'{wrap_name(part_name(1))} <span class="badge text-bg-light border"' in history


def test_the_file_page_of_an_incomplete_set_pulls_the_missing_parts(hub, hf_env, enqueued, client_for, operator,
                                                                    viewer):  # fmt: skip
    add_set(hub)
    for number in (1, 3):
        hf_hub_download(REPO, part_name(number), cache_dir=hub_cache(hf_env), endpoint=hub.endpoint)
    services.modelfile_sync()
    first = ModelFile.objects.get(filename=part_name(1))
    assert first.state == ModelFile.State.INCOMPLETE
    url = reverse("modelfiles:detail", args=[first.pk])
    assert 'data-testid="pull-set"' not in client_for(viewer).get(url).content.decode()
    client = client_for(operator)
    assert 'data-testid="pull-set"' in client.get(url).content.decode()

    response = client.post(PULL_URL, {"repo": REPO, "filename": first.filename, "revision": first.snapshot,
                                      "next": url})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == url
    download = Download.objects.get()
    assert download.parts == COUNT
    result = services.download_run(download_id=download.pk, worker="test")
    assert result.status == Download.Status.COMPLETED, result.error_message
    assert (gets(hub, part_name(1)), gets(hub, part_name(2)), gets(hub, part_name(3))) == (1, 1, 1)
    first.refresh_from_db()
    assert (first.state, first.split_present) == ("ok", COUNT)
    assert Alias.objects.get(source=Alias.Source.MODEL).filename == part_name(1)


def test_the_pull_command_pulls_the_set(hub, hf_env):
    files = add_set(hub)
    total = sum(len(content) for content in files.values())
    out = io.StringIO()
    call_command("pull", REPO, part_name(2), stdout=out)
    text = out.getvalue()
    assert f"Pulling {REPO}/{part_name(1)}@main (3 parts, {human_size(total)})" in text
    assert f"Done: {human_size(total)} in 3 parts, sha256 verified." in text
    assert all(local_file(REPO, name, "main") is not None for name in files)
    out = io.StringIO()
    call_command("pull", REPO, part_name(3), stdout=out)
    assert "Already in the cache (all 3 parts of the split model)" in out.getvalue()
