from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from aliases.presets.models import Preset
from aliases.presets.selectors import SEARCH_FIELDS
from config.search import text_search


class PresetFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    builtin = django_filters.ChoiceFilter(
        label="Kind",
        choices=[("true", "built-in"), ("false", "made here")],
        empty_label="Any kind",
        method="kind",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    class Meta:
        model = Preset
        fields = ("q", "builtin")

    def search(self, queryset: QuerySet[Preset], name: str, value: str) -> QuerySet[Preset]:
        return text_search(queryset, SEARCH_FIELDS, value)

    def kind(self, queryset: QuerySet[Preset], name: str, value: str) -> QuerySet[Preset]:
        return queryset.filter(builtin=value == "true")

    @property
    def is_filtering(self) -> bool:
        return any(str(self.data.get(name, "")).strip() for name in self.filters)
