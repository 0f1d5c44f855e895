"""Django's `naturaltime` for a whole table of times: the same text, a fraction of the cost.

`naturaltime` formats each unit through lazy translations (`npgettext_lazy`, `ngettext_lazy`) that look up the
active language again for every piece of every value: about 60 µs a value, 2 ms of a 30-row alias list. Here each
translated piece is resolved once per language and count and kept, and the distance in calendar units is reckoned as
Django's `timesince` / `timeuntil` reckon it, so the text is exactly Django's (tests/test_humanize.py compares them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django.contrib.humanize.templatetags.humanize import NaturalTimeFormatter
from django.utils.html import avoid_wrapping
from django.utils.timezone import is_aware
from django.utils.translation import get_language, gettext_lazy

# Translated pieces by (language, table, key, count): a few hundred at most (counts of seconds, minutes, hours,
# days, weeks, months and years), kept for the process as the translation catalogues are.
_TEXTS: dict[tuple[str | None, str, str, int | None], str] = {}
_TEXTS_LIMIT = 5_000


def _translated(language: str | None, table: str, key: str, lazy: Any, values: dict[str, int] | None) -> str:
    number = None if values is None else next(iter(values.values()))
    cache_key = (language, table, key, number)
    text = _TEXTS.get(cache_key)
    if text is None:
        if len(_TEXTS) >= _TEXTS_LIMIT:
            _TEXTS.clear()
        text = _TEXTS[cache_key] = str(lazy if values is None else lazy % values)
    return text


class _CachedUnits(dict):
    """A `time_strings` mapping as `timesince` takes it: `units[name] % {"num": n}` answered from the cache."""

    def __init__(self, language: str | None, table: str, lazy_units: dict[str, Any]):
        super().__init__({name: _CachedUnit(language, table, name, lazy) for name, lazy in lazy_units.items()})


class _CachedUnit:
    def __init__(self, language: str | None, table: str, name: str, lazy: Any):
        self.language, self.table, self.name, self.lazy = language, table, name, lazy

    def __mod__(self, values: dict[str, int]) -> str:
        return _translated(self.language, self.table, self.name, self.lazy, values)


# Django's timesince, reckoned the same way (tests/test_humanize.py compares every kind of distance in three
# languages), without its two lookups of the active language per value for the separator: a past year's worth of
# change times made it two thirds of the alias list's time column.
_UNITS = ("year", "month", "week", "day", "hour", "minute")
_SECONDS = (7 * 24 * 3600, 24 * 3600, 3600, 60)  # a week, a day, an hour, a minute
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February as timesince counts it
_SEPARATOR = gettext_lazy(", ")


def _spelled(earlier: datetime, later: datetime, units: _CachedUnits, separator: str) -> str:
    """timesince(earlier, later) with depth 2, for `later` at least a day after `earlier`: whole calendar years
    and months first, then weeks, days, hours and minutes from the date that many months on; the first two
    adjacent units that are not zero."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    if (earlier.day, earlier.time()) > (later.day, later.time()):
        months -= 1  # the last month is not complete yet
    years, months = divmod(months, 12)
    start = earlier
    if years or months:
        year, month = divmod(earlier.month - 1 + months, 12)
        year, month = earlier.year + years + year, month + 1
        start = earlier.replace(year=year, month=month, day=min(_MONTH_DAYS[month - 1], earlier.day), microsecond=0)
    left = (later - start).total_seconds()
    counts = [years, months]
    for seconds in _SECONDS:
        count = int(left // seconds)
        counts.append(count)
        left -= seconds * count
    first = next((index for index, count in enumerate(counts) if count), None)
    if first is None:
        return avoid_wrapping(units["minute"] % {"num": 0})
    shown = []
    for name, count in zip(_UNITS[first : first + 2], counts[first : first + 2], strict=True):
        if not count:
            break
        shown.append(avoid_wrapping(units[name] % {"num": count}))
    return separator.join(shown)


class NaturalTimes:
    """`naturaltime(value)` as a callable, for the many times of one response."""

    def __init__(self) -> None:
        self._units: dict[str | None, tuple[_CachedUnits, _CachedUnits]] = {}

    def _units_in(self, language: str | None) -> tuple[_CachedUnits, _CachedUnits]:
        units = self._units.get(language)
        if units is None:
            units = self._units[language] = (
                _CachedUnits(language, "past", NaturalTimeFormatter.past_substrings),
                _CachedUnits(language, "future", NaturalTimeFormatter.future_substrings),
            )
        return units

    @staticmethod
    def _counted(language: str | None, key: str, count: int) -> str:
        lazy = NaturalTimeFormatter.time_strings[key]
        return _translated(language, "time", key, lazy, {"count": count})

    @staticmethod
    def _template(language: str | None, key: str) -> str:
        return _translated(language, "time", key, NaturalTimeFormatter.time_strings[key], None)

    def __call__(self, value: Any) -> Any:
        # NaturalTimeFormatter.string_for, branch for branch.
        if not isinstance(value, date):
            return value
        language = get_language()
        now = datetime.now(UTC if is_aware(value) else None)
        past = value < now
        delta = now - value if past else value - now
        if delta.days != 0:
            past_units, future_units = self._units_in(language)
            if is_aware(value):
                now = now.astimezone(value.tzinfo)  # as timesince compares them: in the value's time zone
            separator = _translated(language, "time", "separator", _SEPARATOR, None)
            if past:
                spelled = _spelled(value, now, past_units, separator)
                return self._template(language, "past-day") % {"delta": spelled}
            spelled = _spelled(now, value, future_units, separator)
            return self._template(language, "future-day") % {"delta": spelled}
        if delta.seconds == 0:
            return self._template(language, "now")
        direction = "past" if past else "future"
        if delta.seconds < 60:
            return self._counted(language, f"{direction}-second", delta.seconds)
        if delta.seconds // 60 < 60:
            return self._counted(language, f"{direction}-minute", delta.seconds // 60)
        return self._counted(language, f"{direction}-hour", delta.seconds // 60 // 60)
