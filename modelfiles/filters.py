from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from modelfiles.models import Download, ModelFile
from modelfiles.selectors import download_search, location_hosts, location_pks, modelfile_search


class _Filtering:
    @property
    def is_filtering(self) -> bool:
        """Whether the visitor narrowed the list (so "no rows" means "no matches", not "nothing yet")."""
        return any(str(self.data.get(name, "")).strip() for name in self.filters)


class ModelFileFilter(_Filtering, django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Repo or file name", "autocomplete": "off", "spellcheck": "false"}
        ),
    )

    # Files per host: one worker host's cache (choices: the hosts known now).
    host = django_filters.ChoiceFilter(
        label="Host",
        method="on_host",
        choices=[],
        empty_label="Any host",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    class Meta:
        model = ModelFile
        fields = ("q", "host")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["host"].extra["choices"] = [(host, host) for host in location_hosts()]

    def search(self, queryset: QuerySet[ModelFile], name: str, value: str) -> QuerySet[ModelFile]:
        return modelfile_search(queryset, value)

    def on_host(self, queryset: QuerySet[ModelFile], name: str, value: str) -> QuerySet[ModelFile]:
        return queryset.filter(location__in=location_pks(host=value))


class DownloadFilter(_Filtering, django_filters.FilterSet):
    # History lists the finished downloads: the active ones are above it, each once.
    status = django_filters.ChoiceFilter(
        label="State",
        choices=[(value, label) for value, label in Download.Status.choices if value not in Download.ACTIVE],
        empty_label="Any state",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Repo or file name", "autocomplete": "off", "spellcheck": "false"}
        ),
    )

    class Meta:
        model = Download
        fields = ("status", "q")

    def search(self, queryset: QuerySet[Download], name: str, value: str) -> QuerySet[Download]:
        return download_search(queryset, value)
