"""config.humanize.NaturalTimes says exactly what Django's naturaltime says, for every kind of distance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.contrib.humanize.templatetags import humanize
from django.utils import translation

from config.humanize import NaturalTimes

NOW = datetime(2026, 3, 31, 12, 30, 15, 500_000, tzinfo=UTC)
OFFSETS = [
    timedelta(0),
    *(timedelta(seconds=seconds) for seconds in (1, 2, 59, 60, 61, 119, 3599, 3600, 7199, 86399)),
    *(
        timedelta(days=days, seconds=seconds)
        for days in (1, 2, 6, 7, 13, 30, 31, 45, 364, 365, 400, 800)
        for seconds in (0, 1, 3600 * 5 + 7)
    ),
    timedelta(microseconds=1),
    timedelta(days=29, hours=23, minutes=59),
]


def fixed_now(tz=None):
    return NOW if tz is not None else NOW.replace(tzinfo=None)


@pytest.mark.parametrize("language", ["en", "de", "fr"])
@pytest.mark.parametrize("aware", [True, False])
def test_same_text_as_naturaltime(language, aware):
    natural = NaturalTimes()
    values = [NOW - offset for offset in OFFSETS] + [NOW + offset for offset in OFFSETS]
    if not aware:
        values = [value.replace(tzinfo=None) for value in values]
    patched = mock.patch.object(humanize, "datetime", mock.Mock(wraps=datetime, now=fixed_now))
    ours = mock.patch("config.humanize.datetime", mock.Mock(wraps=datetime, now=fixed_now))
    with translation.override(language), patched, ours:
        # Twice each: the second answer comes from what the first kept.
        for value in values + values:
            assert natural(value) == str(humanize.naturaltime(value)), value


def test_not_a_date_is_returned_as_is():
    assert NaturalTimes()("yesterday") == "yesterday"


@pytest.mark.parametrize("language", ["en", "de"])
def test_same_text_as_naturaltime_for_a_spread_of_change_times(language):
    # The list's change times: any second of the last few years (and some ahead), month ends and leap days among
    # them, reckoned on the calendar.
    import random

    pick = random.Random(9)
    natural = NaturalTimes()
    offsets = [timedelta(seconds=pick.randrange(86_400, 3 * 366 * 86_400), microseconds=pick.randrange(10**6))
               for _ in range(1500)]  # fmt: skip
    values = [NOW - offset for offset in offsets] + [NOW + offset for offset in offsets[:300]]
    values += [datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), datetime(2025, 1, 31, 12, 30, 15, 500_001, tzinfo=UTC)]
    patched = mock.patch.object(humanize, "datetime", mock.Mock(wraps=datetime, now=fixed_now))
    ours = mock.patch("config.humanize.datetime", mock.Mock(wraps=datetime, now=fixed_now))
    with translation.override(language), patched, ours:
        for value in values:
            assert natural(value) == str(humanize.naturaltime(value)), value
