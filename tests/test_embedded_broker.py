"""The embedded default's on-disk broker: a worker polling the folder never reads half a message."""

from __future__ import annotations

import os
from queue import Empty

import pytest
from kombu import Connection

from config.broker import Transport


@pytest.fixture
def channel(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    with Connection("filesystem://", transport=Transport, transport_options=options) as connection:
        yield connection.default_channel, folder


def test_a_message_being_written_is_invisible_to_a_polling_worker(channel, monkeypatch):
    chan, folder = channel
    seen_mid_write = []
    real_replace = os.replace

    def replace_after_a_poll(source, target):
        # A worker polls between the write and the rename: with kombu's own transport it would take the file
        # as it was being written and read an empty message (JSONDecodeError, the worker stops).
        try:
            seen_mid_write.append(chan._get("celery"))
        except Empty:
            seen_mid_write.append(None)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_after_a_poll)
    chan._put("celery", {"body": "x" * 10_000})
    monkeypatch.setattr(os, "replace", real_replace)

    assert seen_mid_write == [None]
    assert chan._get("celery") == {"body": "x" * 10_000}
    assert sorted(os.listdir(folder)) == []  # read and removed; no partial file left behind


def test_the_embedded_default_uses_it_and_other_brokers_keep_their_own(settings):
    from config.celery import app

    with app.connection_for_write() as connection:  # makes the transport; connects to nothing
        embedded = settings.CELERY_BROKER_URL.startswith("filesystem://")
        assert isinstance(connection.transport, Transport) is embedded
