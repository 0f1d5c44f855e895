"""Inserting many new rows fast: one prepared INSERT run over all of them (`executemany`).

`QuerySet.bulk_create` prepares every value through its field and rebuilds a multi-row statement per batch;
for a model with forty columns that is most of the time a first cache scan spends (10,000 model files: about
400,000 prepared values, and on SQLite at most 999 parameters a statement, so 24 rows each). Here the statement
is built once, the rows are plain dicts (no model instances), values the database takes as they are (text,
numbers, booleans, None) are passed through, and only the others (dates, JSON, UUIDs) go through their field.
No primary keys are read back: use it where nothing needs them.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

# Fields whose Python values the database drivers take unchanged (the caller gives values of the right type).
_PLAIN = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.FloatField)


def bulk_insert(model: type[models.Model], rows: Sequence[dict], *, batch_size: int = 2000) -> int:
    """INSERT one row per dict of field values (a missing field takes its default, auto_now fields the time of
    the call, the primary key what the database gives) and answer how many rows went in. No model is
    instantiated and nothing is validated: the caller has done that."""
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not (field.primary_key and field.db_returning)]
    placeholders = "({})".format(", ".join(["%s"] * len(fields)))
    sql = "INSERT INTO {} ({}) VALUES {}".format(
        quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields), placeholders
    )
    now = timezone.now()
    defaults: dict[str, Any] = {}
    forced: dict[str, Any] = {}
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            forced[field.name] = now
        else:
            defaults[field.name] = field.get_default()
    values_of = operator.itemgetter(*(field.name for field in fields))
    prepared = [(index, field) for index, field in enumerate(fields) if not isinstance(field, _PLAIN)]
    # SQLite runs executemany in C, a row at a time; psycopg sends one statement per row, so on PostgreSQL the
    # rows go as multi-row VALUES instead (under its 65,535 parameters a statement).
    multi_row = connection.vendor == "postgresql"
    if multi_row:
        batch_size = min(batch_size, 10_000 // len(fields))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = []
            for row in rows[start : start + batch_size]:
                values = list(values_of({**defaults, **row, **forced}))
                for index, field in prepared:
                    values[index] = field.get_db_prep_save(values[index], connection)
                batch.append(values)
            if multi_row:
                cursor.execute(sql + (", " + placeholders) * (len(batch) - 1), [v for values in batch for v in values])
            else:
                cursor.executemany(sql, batch)
    return len(rows)
