"""Path converters every app's URLs share; importing this module registers them."""

from __future__ import annotations

from django.urls import register_converter


class RowIdConverter:
    """A row id that fits a 64-bit integer column: longer numbers are no match (404), never a database error."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(RowIdConverter, "rowid")
