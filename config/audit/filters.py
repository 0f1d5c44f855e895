from __future__ import annotations

from datetime import date, datetime, time, timedelta

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from config.audit.models import AuditEntry
from config.audit.selectors import SYSTEM_ACTOR, audit_action_names, audit_actor_names, audit_filter_actor, audit_search


def actor_choices() -> list[tuple[str, str]]:
    return [(SYSTEM_ACTOR, "system (workers, scans)"), *((name, name) for name in audit_actor_names())]


def action_choices() -> list[tuple[str, str]]:
    return [(action, action) for action in audit_action_names()]


# Dates at the very ends of the calendar mean "no bound" (the day after 9999-12-31 does not exist).
EARLIEST = date(1, 1, 2)
LATEST = date(9999, 12, 30)


def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in the site's time zone: dates on the page are local dates."""
    return timezone.make_aware(datetime.combine(day, time.min))


class AuditFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Object",
        method="search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Object name or id", "autocomplete": "off"}),
    )
    actor = django_filters.ChoiceFilter(
        label="Actor",
        choices=actor_choices,
        empty_label="Anyone",
        method="filter_actor",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    kind = django_filters.ChoiceFilter(
        label="Kind",
        choices=AuditEntry.Kind.choices,
        empty_label="Any kind",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    action = django_filters.ChoiceFilter(
        label="Action",
        choices=action_choices,
        empty_label="Any action",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    since = django_filters.DateFilter(
        label="From",
        method="filter_since",
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}, format="%Y-%m-%d"),
    )
    until = django_filters.DateFilter(
        label="To (inclusive)",
        method="filter_until",
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}, format="%Y-%m-%d"),
    )

    class Meta:
        model = AuditEntry
        fields = ("q", "actor", "kind", "action", "since", "until")

    def filter_queryset(self, queryset: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        queryset = super().filter_queryset(queryset)
        # "Every entry for this object" links from an entry's page carry its id; the form has no field for it
        # (ids mean nothing to type), but a search from there keeps it through a hidden input.
        object_id = self.object_id
        return queryset.filter(object_id=object_id) if object_id else queryset

    @property
    def object_id(self) -> str:
        return str(self.data.get("object_id", "")).strip()[:64]

    @property
    def is_filtering(self) -> bool:
        """Whether the visitor narrowed the list (so "no rows" means "no matches", not "nothing yet")."""
        return bool(self.object_id) or any(str(self.data.get(name, "")).strip() for name in self.filters)

    def search(self, queryset: QuerySet[AuditEntry], name: str, value: str) -> QuerySet[AuditEntry]:
        return audit_search(queryset, value)

    def filter_actor(self, queryset: QuerySet[AuditEntry], name: str, value: str) -> QuerySet[AuditEntry]:
        return audit_filter_actor(queryset, value)

    def filter_since(self, queryset: QuerySet[AuditEntry], name: str, value: date) -> QuerySet[AuditEntry]:
        if value <= EARLIEST:
            return queryset  # nothing is older; and midnight of year 1 may not survive a time-zone shift
        return queryset.filter(at__gte=start_of_day(value))

    def filter_until(self, queryset: QuerySet[AuditEntry], name: str, value: date) -> QuerySet[AuditEntry]:
        if value >= LATEST:
            return queryset
        # A range over the indexed column, not `at__date`, which no index serves.
        return queryset.filter(at__lt=start_of_day(value + timedelta(days=1)))
