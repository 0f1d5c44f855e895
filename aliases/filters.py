from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from aliases.file_status import alias_not_available
from aliases.models import Alias
from aliases.search import HELP as SEARCH_HELP
from aliases.search import validate_search
from aliases.selectors import alias_search


class AliasFilter(django_filters.FilterSet):
    # Fixed choices and nothing per user: the form's markup depends on its values alone (config/templatetags/layout.py).
    form_is_fixed = True

    q = django_filters.CharFilter(
        label="Search",
        method="search",
        validators=[validate_search],
        help_text=SEARCH_HELP,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search alias, repo or file", "autocomplete": "off"}
        ),
    )
    source = django_filters.ChoiceFilter(
        choices=Alias.Source.choices, empty_label="Any source", widget=forms.Select(attrs={"class": "form-select"})
    )
    # Typed, not picked: one option per repo does not scale to a shelf of thousands (2,000 options were 2.5 s of
    # a 3.4 s page). Matches any repo containing the text, ignoring case; Enter or Filter applies it.
    repo = django_filters.CharFilter(
        lookup_expr="icontains",
        widget=forms.TextInput(
            attrs={"class": "form-control", "placeholder": "owner/name", "autocomplete": "off", "spellcheck": "false"}
        ),
    )

    file = django_filters.ChoiceFilter(
        label="File",
        choices=[("unavailable", "not available"), ("local", "local")],
        empty_label="Any file",
        method="file_available",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    class Meta:
        model = Alias
        fields = ("q", "source", "repo", "file")

    def get_form_class(self) -> type[forms.Form]:
        # The same fields for every request (form_is_fixed): the form class is made once, not on every page.
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            type(self)._form_class = form_class
        return form_class

    def file_available(self, queryset: QuerySet[Alias], name: str, value: str) -> QuerySet[Alias]:
        unavailable = alias_not_available(queryset)
        return unavailable if value == "unavailable" else queryset.exclude(pk__in=unavailable.values("pk"))

    def search(self, queryset: QuerySet[Alias], name: str, value: str) -> QuerySet[Alias]:
        return alias_search(queryset, value)

    @property
    def is_filtering(self) -> bool:
        """Whether the visitor narrowed the list (so "no rows" means "no matches", not "no aliases")."""
        return any(str(self.data.get(name, "")).strip() for name in self.filters)
