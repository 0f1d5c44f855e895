from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from modelfiles.cache import local_file
from modelfiles.models import Download, ModelFile
from tests.modelfiles.hubfixtures import FILE, REPO, hf_env, hub, hub_cache, pseudo_random, sha256_of

__all__ = ["hf_env", "hub"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    # The command runs the download itself; the task it also queues would only find the row already claimed.
    from modelfiles.tasks import download_task

    monkeypatch.setattr(download_task, "delay", lambda download_id: None)


def test_pull_command_downloads_verifies_and_shows_progress(hub, hf_env):
    content = pseudo_random(2_500_000)
    hub.add_repo(REPO, files={FILE: content})
    hub.faults.set(throttle_bytes_per_second=1_000_000, times=1)
    out = io.StringIO()
    call_command("pull", REPO, FILE, stdout=out)
    text = out.getvalue()
    assert "Done: 2.4 MB, sha256 verified." in text
    assert "%" in text and "ETA" in text  # at least one progress line
    assert sha256_of(local_file(REPO, FILE, "main")) == hashlib.sha256(content).hexdigest()
    assert Download.objects.get().status == Download.Status.COMPLETED


def test_pull_command_reports_a_file_already_local(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    call_command("pull", REPO, FILE, stdout=io.StringIO())
    out = io.StringIO()
    call_command("pull", REPO, FILE, stdout=out)
    assert "Already in the cache" in out.getvalue()


def test_pull_command_explains_permanent_failures(hub, hf_env):
    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    with pytest.raises(CommandError, match="does not exist in acme/tiny-llama-GGUF"):
        call_command("pull", REPO, "nope.Q2_K.gguf", stdout=io.StringIO())


def test_pull_command_rejects_bad_input_without_touching_the_hub(hub, hf_env):
    with pytest.raises(CommandError, match="filename: The file must be a GGUF file"):
        call_command("pull", REPO, "weights.bin", stdout=io.StringIO())
    assert hub.requests == []
    assert not Download.objects.exists()


def test_scan_cache_command_lists_what_is_in_the_cache(hub, hf_env):
    from huggingface_hub import hf_hub_download

    hub.add_repo(REPO, files={FILE: pseudo_random(1000)})
    hf_hub_download(REPO, FILE, cache_dir=hub_cache(hf_env), endpoint=hub.endpoint)
    out = io.StringIO()
    call_command("scan_cache", stdout=out)
    assert "1 GGUF file(s); 1 new, 0 changed, 0 gone." in out.getvalue()
    assert ModelFile.objects.filter(present=True).count() == 1
