"""Read queries shared by the alias pages and the API."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from aliases.models import Alias

SEARCH_FIELDS = ("alias", "repo", "filename")


def alias_search(queryset: QuerySet[Alias], text: str) -> QuerySet[Alias]:
    """Case-insensitive substring match across alias, repo and filename."""
    text = text.strip()
    if not text:
        return queryset
    condition = Q()
    for field in SEARCH_FIELDS:
        condition |= Q(**{f"{field}__icontains": text})
    return queryset.filter(condition)


def alias_list(*, search: str = "") -> QuerySet[Alias]:
    return alias_search(Alias.objects.all(), search)


def alias_get(*, name: str) -> Alias | None:
    return Alias.objects.by_name(name).first()
