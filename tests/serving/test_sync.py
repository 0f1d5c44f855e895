"""The preset file kept in step with the shelf (issue 10, item 2): rewritten atomically once per committed change,
only when its text changed, the router told to reload; a router that is down is logged, never raised."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.db import connection, transaction

from aliases.services import alias_create, alias_delete, alias_update
from config.serving import services, tasks
from config.serving.services import preset_sync
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_gguf
from tests.modelfiles import cache_file
from tests.serving.conftest import FILENAME, REPO, TEMPLATE
from tests.serving.recorder import recording_server

# Real commits: the sync runs on commit, as it does in production.
pytestmark = pytest.mark.django_db(transaction=True)

ALIAS = {"alias": "tiny:chat", "repo": REPO, "filename": FILENAME, "snapshot": "main", "chat_template": "embedded"}


@pytest.fixture
def preset_file(settings, tmp_path, local_file) -> Path:
    local_file()
    path = tmp_path / "router" / "models.ini"
    settings.MODELDESK_LLAMA_PRESET_PATH = str(path)
    return path


@pytest.fixture
def router(settings):
    with recording_server() as server:
        settings.MODELDESK_LLAMA_SERVER_URL = server.url
        yield server


def test_an_alias_save_rewrites_the_preset_when_it_commits(preset_file, router):
    with transaction.atomic():
        alias_create(data={**ALIAS, "temperature": 0.5}, by=None)
        alias_create(data={**ALIAS, "alias": "second"}, by=None)
        assert not preset_file.exists()  # nothing before the commit

    text = preset_file.read_text()
    assert "[tiny:CHAT]" in text and "temp = 0.5" in text and "[second]" in text
    assert router.paths == ["/models?reload=1"]
    assert list(preset_file.parent.glob(".*.tmp")) == []


def test_a_rolled_back_change_writes_nothing_and_the_next_one_still_does(preset_file):
    with transaction.atomic():
        # An inner block that fails: its change and its sync go; the outer transaction commits nothing of it.
        try:
            with transaction.atomic():
                alias_create(data=ALIAS, by=None)
                raise RuntimeError("abandoned")
        except RuntimeError:
            pass
    assert not preset_file.exists()

    alias_create(data=ALIAS, by=None)

    assert "[tiny:CHAT]" in preset_file.read_text()


def test_a_change_of_many_rows_syncs_once(preset_file, hf_home, router):
    for number in range(5):
        cache_file(hf_home, "acme/Many", f"m{number}.Q8_0.gguf", content=tiny_gguf(chat_template=TEMPLATE, seed=number))

    with transaction.atomic():
        modelfile_sync()  # five new files, five generated aliases and their audit entries
        alias_create(data=ALIAS, by=None)
        queued = [entry for entry in connection.run_on_commit if entry[1] is services._sync_after_commit]
    assert len(queued) == 1

    assert preset_file.read_text().count("[acme/Many:Q8_0]") == 1  # one id for all five: the first is served
    assert router.paths == ["/models?reload=1"]


def test_the_file_is_replaced_only_when_its_text_changes(preset_file, router):
    alias = alias_create(data=ALIAS, by=None)
    first = preset_file.stat()

    alias = alias_update(alias=alias, data={"user": "someone"}, expected_version=1, by=None)  # not in the preset
    assert preset_file.stat().st_ino == first.st_ino
    assert router.paths == ["/models?reload=1"]

    alias_update(alias=alias, data={"temperature": 1.25}, expected_version=2, by=None)
    # Replaced by a rename, never written in place: readers see the old file or the new one.
    assert preset_file.stat().st_ino != first.st_ino
    assert "temp = 1.25" in preset_file.read_text()
    assert router.paths == ["/models?reload=1", "/models?reload=1"]


def test_a_deleted_alias_leaves_the_preset(preset_file):
    alias = alias_create(data=ALIAS, by=None)
    alias_delete(alias=alias, by=None)

    assert "[tiny:CHAT]" not in preset_file.read_text()


def test_a_router_that_is_down_is_logged_and_the_save_stands(preset_file, settings, caplog):
    settings.MODELDESK_LLAMA_SERVER_URL = "http://127.0.0.1:9"
    with caplog.at_level(logging.WARNING):
        alias = alias_create(data=ALIAS, by=None)

    assert alias.pk
    assert "[tiny:CHAT]" in preset_file.read_text()
    assert any("did not reload" in record.getMessage() for record in caplog.records)


def test_template_files_are_written_beside_the_preset(preset_file):
    alias_create(data={**ALIAS, "chat_template": "tinyllama"}, by=None)

    template = preset_file.parent / "chat-template.tinyllama.jinja"
    assert f"chat-template-file = {template}" in preset_file.read_text()
    assert "<|assistant|>" in template.read_text()


def test_a_template_file_no_alias_names_any_more_is_removed_and_other_files_stay(preset_file):
    alias = alias_create(data={**ALIAS, "chat_template": "tinyllama"}, by=None)
    template = preset_file.parent / "chat-template.tinyllama.jinja"
    mine = preset_file.parent / "notes.txt"
    mine.write_text("an operator's own file beside the preset")
    assert template.exists()

    alias_update(alias=alias, data={"chat_template": "embedded"}, expected_version=alias.version, by=None)

    assert "chat-template-file" not in preset_file.read_text()
    assert not template.exists()
    assert mine.read_text().startswith("an operator's")


def test_the_worker_writes_the_preset_when_it_starts(preset_file, router):
    assert not preset_file.exists()

    tasks._on_worker_ready()

    assert "version = 1" in preset_file.read_text()
    assert router.paths == ["/models?reload=1"]


def test_without_a_preset_path_nothing_is_written(settings, tmp_path):
    settings.MODELDESK_LLAMA_PRESET_PATH = ""
    with transaction.atomic():
        alias_create(data=ALIAS, by=None)
        assert not [entry for entry in connection.run_on_commit if entry[1] is services._sync_after_commit]
    assert preset_sync() is False
