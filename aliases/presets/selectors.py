"""Preset look-ups shared by the pages and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from aliases.presets.models import Preset
from config.search import text_search

SEARCH_FIELDS = ("name", "description")


def preset_list(*, search: str = "") -> QuerySet[Preset]:
    return text_search(Preset.objects.all(), SEARCH_FIELDS, search)


def preset_get(*, name: str) -> Preset | None:
    return Preset.objects.by_name(name).first()
