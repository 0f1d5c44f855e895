"""Django's `naturaltime` for a whole table of times: the same text, a fraction of the cost.

`naturaltime` formats each unit through lazy translations (`npgettext_lazy`, `ngettext_lazy`) that look up the
active language again for every piece of every value: about 60 µs a value, 2 ms of a 30-row alias list. Here each
translated piece is resolved once per language and count and kept, and Django's own
`timesince` / `timeuntil` do the arithmetic, so the text is exactly Django's (tests/test_humanize.py compares them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django.contrib.humanize.templatetags.humanize import NaturalTimeFormatter
from django.utils.timesince import timesince, timeuntil
from django.utils.timezone import is_aware
from django.utils.translation import get_language

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
    """A `time_strings` mapping for `timesince`: `units[name] % {"num": n}` answered from the cache."""

    def __init__(self, language: str | None, table: str, lazy_units: dict[str, Any]):
        super().__init__({name: _CachedUnit(language, table, name, lazy) for name, lazy in lazy_units.items()})


class _CachedUnit:
    def __init__(self, language: str | None, table: str, name: str, lazy: Any):
        self.language, self.table, self.name, self.lazy = language, table, name, lazy

    def __mod__(self, values: dict[str, int]) -> str:
        return _translated(self.language, self.table, self.name, self.lazy, values)


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
            if past:
                spelled = timesince(value, now, time_strings=past_units)
                return self._template(language, "past-day") % {"delta": spelled}
            spelled = timeuntil(value, now, time_strings=future_units)
            return self._template(language, "future-day") % {"delta": spelled}
        if delta.seconds == 0:
            return self._template(language, "now")
        direction = "past" if past else "future"
        if delta.seconds < 60:
            return self._counted(language, f"{direction}-second", delta.seconds)
        if delta.seconds // 60 < 60:
            return self._counted(language, f"{direction}-minute", delta.seconds // 60)
        return self._counted(language, f"{direction}-hour", delta.seconds // 60 // 60)
