"""The active rows the live pages poll are kept in the cache under a version that every write renews."""

from __future__ import annotations

import pytest

from modelfiles import live
from modelfiles.models import Download
from modelfiles.services import download_cancel
from tests.modelfiles import make_download

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda row: Download.objects.filter(pk=row.pk).update(bytes_done=5), id="update"),
        pytest.param(lambda row: row.save(update_fields=["bytes_done"]), id="save"),
        pytest.param(lambda row: row.delete(), id="delete"),
        pytest.param(lambda row: download_cancel(download=row, by=None), id="service"),
    ],
)
def test_every_write_to_the_rows_renews_their_version(write):
    row = make_download(status=Download.Status.QUEUED)
    assert [download.pk for download in live.download_active_shared()] == [row.pk]
    before = live.downloads_version()
    write(row)
    assert live.downloads_version() != before


def test_a_cache_that_does_not_answer_does_not_fail_the_write(monkeypatch, caplog):
    row = make_download(status=Download.Status.DOWNLOADING)

    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(live.caches[live.CACHE_ALIAS], "set", refuse)
    assert Download.objects.filter(pk=row.pk).update(bytes_done=7) == 1
    assert Download.objects.get(pk=row.pk).bytes_done == 7
    assert "could not mark the downloads changed" in caplog.text
