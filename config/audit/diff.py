"""Before and after of an audit entry as rows a person reads: field, old value → new value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ABSENT = object()  # the key is not in that side at all (a create has no before, a delete no after)


@dataclass(frozen=True)
class Cell:
    """One side of one field: `text` for a scalar, `items` for a list of scalars, `absent` when not there."""

    text: str = ""
    items: tuple[str, ...] | None = None
    absent: bool = False
    unset: bool = False


@dataclass(frozen=True)
class DiffRow:
    field: str
    before: Cell
    after: Cell
    changed: bool


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    # Nested objects stay JSON, compact and in a stable order.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def cell(value: Any) -> Cell:
    if value is ABSENT:
        return Cell(absent=True)
    if value is None or value == "" or value == []:
        return Cell(text="not set" if value is None else "empty", unset=True)
    if isinstance(value, list) and all(not isinstance(item, dict | list) for item in value):
        return Cell(items=tuple(_scalar(item) for item in value))
    return Cell(text=_scalar(value))


def _is_empty(value: Any) -> bool:
    return value is ABSENT or value is None or value == "" or value == []


def _field_order(name: str) -> tuple[int, str]:
    from aliases.models import EDITABLE_FIELDS

    return (EDITABLE_FIELDS.index(name), "") if name in EDITABLE_FIELDS else (len(EDITABLE_FIELDS), str(name))


def diff_rows(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[DiffRow]:
    """Every field of either side, in a fixed order (an alias's in its form's order, others by name).

    A field that is only on one side and empty there (an unset parameter of a created alias) is not a change.
    """
    before = before if isinstance(before, Mapping) else {}
    after = after if isinstance(after, Mapping) else {}
    # PostgreSQL's jsonb keeps no key order, so the order is ours: an alias's fields as its form shows them, any
    # other key by name, the same on every database.
    names = sorted({*before, *after}, key=_field_order)
    rows = []
    for name in names:
        old, new = before.get(name, ABSENT), after.get(name, ABSENT)
        one_sided = old is ABSENT or new is ABSENT
        changed = not (_is_empty(old) and _is_empty(new)) if one_sided else old != new
        rows.append(DiffRow(field=str(name), before=cell(old), after=cell(new), changed=changed))
    return rows


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    return [row.field for row in diff_rows(before, after) if row.changed]
