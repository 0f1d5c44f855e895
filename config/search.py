"""The quick search every list shares: pages, filters and the API search the same way."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q, QuerySet


def text_search(queryset: QuerySet, fields: Sequence[str], text: str) -> QuerySet:
    """Rows where any of `fields` holds `text`, ignoring case and surrounding spaces; all rows for blank text."""
    text = text.strip()
    if not text:
        return queryset
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": text})
    return queryset.filter(condition)
