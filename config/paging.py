"""One page of an ordered queryset, read the cheap way: the list pages and the API page through this.

- The page's keys come first, from a subquery that needs only the index of the order (each row stepped over on
  the way to a deep page is an index entry, not a whole row); then only those rows are fetched.
- Near either end (at most DIRECT_OFFSET rows to step over) the rows are read directly, in one plain query: the
  few rows stepped over cost less than a subquery does to build and run.
- Past half way the order is reversed and the page read from the far end, so the last page costs what the first
  does instead of walking the whole table.
- A queryset may be narrowed by an index whose look-up costs as much however many rows match, and then every match
  is read and sorted before a page can be cut: the aliases' trigram search index (aliases/search.py). Such a
  queryset offers `without_search_index()`: the same rows without that narrowing. When the matches are dense in
  the table, the page is looked for among the first rows of the whole table in the page's order (an index walk of
  a few hundred rows, tested one by one) and the narrowed plan is the fallback; the page's rows are always fetched
  without the narrowing (their keys already say which they are).
"""

from __future__ import annotations

from django.db.models import QuerySet

# Reading a match through the search index and sorting it costs about 2.5 times what testing one row of the
# order's index does (SQLite, 100,000 aliases); a look among the first rows is tried when it costs less than this.
WALK_COST_RATIO = 2
# Matches need not be spread evenly: the look covers four times the rows an even spread needs, and a margin.
WALK_ALLOWANCE, WALK_MARGIN = 4, 100
# Up to this many rows stepped over, a page is read directly rather than its keys first (the first pages of a
# list, the last ones from the far end): ~0.5 ms less per page to compile and run, and as cheap to read.
DIRECT_OFFSET = 300


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
        keys = None
        fetched = getattr(ordered, "without_search_index", lambda: None)()
        if fetched is not None:
            keys = _keys_near_the_start(fetched, order, backwards, offset=offset, end=end, total=total)
        elif offset <= DIRECT_OFFSET:
            return _in_order(list(ordered[offset:end]), backwards)
        else:
            fetched = ordered
        if keys is None:
            keys = ordered.values("pk")[offset:end]
        rows = list(fetched.filter(pk__in=keys))
    return _in_order(rows, backwards)


def _in_order(rows: list, backwards: bool) -> list:
    return rows[::-1] if backwards else rows


def _keys_near_the_start(queryset: QuerySet, order, backwards: bool, *, offset: int, end: int, total: int):
    """The keys of rows offset..end of `queryset` (`total` rows, ordered) looked for among the first rows of the
    whole table in the same order; None when those do not hold them, or when looking costs more than the narrowed
    plan. The first rows of the table in an order hold the first matches in it, so whatever they hold is right."""
    if WALK_ALLOWANCE * end + WALK_MARGIN > WALK_COST_RATIO * total:  # too few matches, whatever the table's size
        return None
    table = queryset.model._base_manager.count()
    # `total` matches spread evenly among `table` rows put `end` of them within end × table / total rows.
    budget = WALK_ALLOWANCE * end * table // total + WALK_MARGIN
    if budget > WALK_COST_RATIO * total:
        return None
    first = queryset.model._base_manager.order_by(*order)
    first = first.reverse() if backwards else first
    keys = list(queryset.filter(pk__in=first.values("pk")[:budget]).values_list("pk", flat=True)[offset:end])
    return keys if len(keys) == end - offset else None
