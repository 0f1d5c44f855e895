"""One page of an ordered queryset, read the cheap way: the list pages and the API page through this.

- The page's keys come first, from a subquery that needs only the index of the order (each row stepped over on
  the way to a deep page is an index entry, not a whole row); then only those rows are fetched.
- Past half way the order is reversed and the page read from the far end, so the last page costs what the first
  does instead of walking the whole table.
"""

from __future__ import annotations

from django.db.models import QuerySet


def page_rows(queryset: QuerySet, *, offset: int, limit: int, total: int) -> list:
    """Rows offset..offset+limit of the ordered `queryset`, which has `total` rows (its count, already known)."""
    if offset >= total or limit <= 0:
        return []
    end = min(offset + limit, total)
    order = queryset.query.order_by or queryset.model._meta.ordering
    backwards = offset > total - end and bool(order)
    ordered = queryset.order_by(*order)
    if backwards:
        ordered, offset, end = ordered.reverse(), total - end, total - offset
    query = ordered.query
    if query.distinct or query.group_by is not None or query.combinator:
        # A DISTINCT subquery selects its order's columns too, and a grouped one its groups: slice plainly.
        rows = list(ordered[offset:end])
    else:
        keys = ordered.values("pk")[offset:end]
        rows = list(ordered.filter(pk__in=keys))
    return rows[::-1] if backwards else rows
