"""The dashboard at `/`: what each role sees, its storage figures, and that it polls only while downloads run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from aliases.models import Alias
from config import dashboard
from config.health.models import WorkerHeartbeat
from modelfiles.models import Download
from modelfiles.services import modelfile_sync
from tests.modelfiles import OTHER_COMMIT, cache_file, make_download, make_modelfile

pytestmark = pytest.mark.django_db

HOME = reverse("home")
ACTIVE_URL = reverse("modelfiles:downloads-active")
HTMX = {"HTTP_HX_REQUEST": "true"}
POLLING = 'hx-trigger="every 1s"'


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path) -> Path:
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def section(page: str, testid: str) -> str:
    start = page.index(f'data-testid="{testid}"')
    return page[start : page.index("</section>", start)]


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


@pytest.mark.parametrize("role", ["viewer", "operator", "editor", "admin_user"])
def test_every_role_sees_the_counts_and_the_disk(request, client_for, role, alias_factory):
    alias_factory.create_batch(3)
    make_modelfile(size=2 * 1024**3)
    response = client_for(request.getfixturevalue(role)).get(HOME)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Dashboard · ModelDesk</title>" in page
    assert re.search(r'data-testid="alias-count">3<', page)
    assert re.search(r'data-testid="file-count">1<', page)
    assert "2.0 GB" in section(page, "file-summary")
    assert 'data-testid="disk-free"' in page
    assert 'aria-current="page"\n             href="/">Dashboard</a>' in page


def test_write_links_follow_the_role(client_for, viewer, operator, editor, admin_user):
    create, pull = reverse("aliases:create"), reverse("modelfiles:pull")
    pages = {user: client_for(user).get(HOME).content.decode() for user in (viewer, operator, editor, admin_user)}
    assert f'href="{create}"' not in pages[viewer] and f'href="{pull}"' not in pages[viewer]
    assert f'href="{pull}"' in pages[operator] and f'href="{create}"' not in pages[operator]
    assert f'href="{create}"' in pages[editor] and f'href="{pull}"' not in pages[editor]
    assert f'href="{create}"' in pages[admin_user] and f'href="{pull}"' in pages[admin_user]


def test_empty_states_say_what_to_do_next(client_for, viewer, operator, editor):
    viewer_page = client_for(viewer).get(HOME).content.decode()
    assert "No aliases yet. An editor can create them." in viewer_page
    assert "No model files yet. An operator can pull one from the Hugging Face Hub." in viewer_page
    editor_page = client_for(editor).get(HOME).content.decode()
    assert f'No aliases yet: <a href="{reverse("aliases:create")}">create one</a>' in editor_page
    operator_page = client_for(operator).get(HOME).content.decode()
    assert f'No model files: <a href="{reverse("modelfiles:pull")}">pull one</a>' in operator_page


def test_storage_counts_each_blob_once_and_reads_the_cache_volume(client_for, admin_user, hf_home):
    # Two snapshots of one repo holding the same bytes share one blob: it takes its size on disk once.
    cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q4_K_M.gguf", content=b"GGUF" + b"\0" * 4096)
    cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q4_K_M.gguf", content=b"GGUF" + b"\0" * 4096, commit=OTHER_COMMIT,
               ref="v1")  # fmt: skip
    cache_file(hf_home, "acme/Other-GGUF", "other.Q8_0.gguf", content=b"GGUF" + b"\1" * 1000)
    modelfile_sync()
    storage = dashboard.storage_summary()
    assert storage.files == 3
    assert storage.used == 4100 + 1004
    assert storage.cache_dir == hf_home / "hub"
    usage = shutil.disk_usage(hf_home)
    assert storage.total == usage.total
    assert abs(storage.free - usage.free) < 64 * 1024 * 1024
    page = client_for(admin_user).get(HOME).content.decode()
    disk = section(page, "storage-summary")
    assert f'data-testid="cache-dir">{hf_home / "hub"}<' in disk
    assert '<span data-testid="disk-used">5.0 KB</span>' in disk


def test_storage_of_a_cache_not_made_yet_is_read_on_its_nearest_parent(hf_home):
    assert not hf_home.exists()
    storage = dashboard.storage_summary()
    assert storage.volume_dir == hf_home.parent
    assert storage.files == 0 and storage.used == 0
    assert storage.total == shutil.disk_usage(hf_home.parent).total


def test_low_disk_space_is_flagged():
    gib = 1024**3
    roomy = dashboard.Storage(Path("/c"), Path("/c"), files=1, used=gib, free=400 * gib, total=1000 * gib)
    tight = dashboard.Storage(Path("/c"), Path("/c"), files=1, used=gib, free=5 * gib, total=1000 * gib)
    assert not roomy.low_on_space
    assert tight.low_on_space
    assert roomy.cache_percent == 0.1 and roomy.other_percent == 59.9


def test_recent_failures_show_the_message_and_a_retry_for_those_who_may(client_for, viewer, operator):
    failed = make_download(
        status=Download.Status.FAILED,
        error_code="gated_repo",
        error_message="acme/Tiny-GGUF is gated: accept its licence on the Hub, then set HF_TOKEN and retry.",
    )
    make_download(status=Download.Status.COMPLETED, filename="fine.gguf")
    viewer_page = client_for(viewer).get(HOME).content.decode()
    failures = section(viewer_page, "recent-failures")
    assert failed.filename in failures and "fine.gguf" not in failures
    assert "is gated: accept its licence" in failures
    assert "Retry" not in failures
    operator_failures = section(client_for(operator).get(HOME).content.decode(), "recent-failures")
    assert reverse("modelfiles:download-retry", args=[failed.pk]) in operator_failures


def test_no_failures_no_failure_section(client_for, viewer):
    make_download(status=Download.Status.COMPLETED)
    assert 'data-testid="recent-failures"' not in client_for(viewer).get(HOME).content.decode()


def test_dashboard_polls_only_while_a_download_is_active(client_for, viewer):
    client = client_for(viewer)
    make_download(status=Download.Status.FAILED)
    make_download(status=Download.Status.COMPLETED)
    idle = client.get(HOME).content.decode()
    assert POLLING not in idle
    assert "Nothing is downloading right now." in idle
    active = make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=250)
    busy = client.get(HOME).content.decode()
    assert busy.count(POLLING) == 1
    assert f'hx-get="{ACTIVE_URL}?state=' in busy
    assert 'aria-valuenow="25.0"' in busy
    Download.objects.filter(pk=active.pk).update(status=Download.Status.COMPLETED)
    assert POLLING not in client.get(HOME).content.decode()


def test_the_summary_reloads_alone_when_downloads_change(client_for, viewer, alias_factory):
    page = client_for(viewer).get(HOME).content.decode()
    assert f'hx-get="{HOME}" hx-trigger="downloads-changed from:body"' in page
    alias_factory()
    fragment = client_for(viewer).get(HOME, **HTMX)
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<div id="dashboard-summary"')
    assert re.search(r'data-testid="alias-count">1<', body)
    assert "HX-Request" in fragment["Vary"]


def test_dashboard_costs_a_fixed_number_of_queries(client_for, operator, alias_factory, django_assert_max_num_queries):
    client = client_for(operator)
    client.get(HOME)
    alias_factory.create_batch(5)
    for number in range(5):
        make_modelfile()
        make_download(status=Download.Status.FAILED, filename=f"f{number}.gguf")
        make_download(status=Download.Status.DOWNLOADING, filename=f"d{number}.gguf", bytes_total=10, bytes_done=1)
        WorkerHeartbeat.objects.create(name=f"celery@w{number}", host="h", pid=number + 1, started_at=timezone.now(),
                                       last_seen=timezone.now())  # fmt: skip
    # Session, user, permissions, the requester's notices, counts, storage, failures, active rows, workers.
    with django_assert_max_num_queries(11):
        response = client.get(HOME)
    assert response.content.decode().count('class="card mb-2 active-download"') == 5
    assert response.content.decode().count("data-worker=") == 5
    assert Alias.objects.count() == 5


@pytest.fixture
def shared_cache(settings, monkeypatch):
    """The cache every process shares (Redis in production): the summary's reloads come from it. Its time limit
    is taken out of the way, so only a change of the downloads renews it."""
    settings.CACHE_SHARED = True
    monkeypatch.setattr(dashboard, "SUMMARY_SECONDS", 10**9)


def test_a_crowd_reloading_the_summary_shares_one_rendering_per_change(client_for, make_user, shared_cache):
    running = make_download(status=Download.Status.DOWNLOADING, bytes_total=10, bytes_done=1)
    first, second = (client_for(make_user("operator", name)) for name in ("oda", "omar"))
    before = [first.get(HOME, **HTMX), second.get(HOME, **HTMX)]
    assert before[0].templates and not before[1].templates
    assert "recent-failures" not in before[1].content.decode()
    # The download fails: its row's write renews the downloads' version, so the next reload renders again.
    Download.objects.filter(pk=running.pk).update(status=Download.Status.FAILED, error_message="The Hub said 404.")
    after = [first.get(HOME, **HTMX), second.get(HOME, **HTMX)]
    assert after[0].templates and not after[1].templates
    for response in after:
        body = response.content.decode()
        assert "The Hub said 404." in body and ">Retry</button>" in body
    tokens = [re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.content.decode()) for r in after]
    assert tokens[0] and tokens[1] and tokens[0] != tokens[1]


def test_a_shared_summary_is_not_shown_to_someone_with_other_buttons(client_for, viewer, operator, shared_cache):
    make_download(status=Download.Status.FAILED, error_message="The Hub said 404.")
    assert ">Retry</button>" in client_for(operator).get(HOME, **HTMX).content.decode()
    seen = client_for(viewer).get(HOME, **HTMX)
    assert seen.templates  # rendered for the viewer's buttons, not taken from the operator's
    assert "The Hub said 404." in seen.content.decode() and ">Retry</button>" not in seen.content.decode()
