"""Inserting many new rows fast, without model instances: a prepared INSERT run over every row (SQLite) or a
COPY (PostgreSQL).

`QuerySet.bulk_create` prepares every value through its field and rebuilds a multi-row statement per batch;
for a model with forty columns that is most of the time a first cache scan spends (10,000 model files: about
400,000 prepared values, and on SQLite at most 999 parameters a statement, so 24 rows each). Here the rows are
plain dicts, values the database takes as they are (text, numbers, booleans, None) are passed through, and only
the others (dates, JSON, UUIDs) go through their field. No primary keys are read back: use it where nothing
needs them.
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
    table, columns = quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    now = timezone.now()
    defaults: dict[str, Any] = {}
    forced: dict[str, Any] = {}
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            forced[field.name] = now
        else:
            defaults[field.name] = field.get_default()
    values_of = operator.itemgetter(*(field.name for field in fields))
    # The time of the call is the same for every row: prepared once.
    forced = {name: next(f for f in fields if f.name == name).get_db_prep_save(value, connection)
              for name, value in forced.items()}  # fmt: skip
    prepared = [(index, field) for index, field in enumerate(fields)
                if not isinstance(field, _PLAIN) and field.name not in forced]  # fmt: skip

    def prepared_rows(chunk: Sequence[dict]) -> list[list]:
        batch = []
        for row in chunk:
            values = list(values_of({**defaults, **row, **forced}))
            for index, field in prepared:
                values[index] = field.get_db_prep_save(values[index], connection)
            batch.append(values)
        return batch

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # psycopg interpolates every parameter into the statement on the client (Django's default cursor):
            # an executemany or a multi-row VALUES of 10,000 rows spent seconds there. COPY streams them.
            # The raw cursor's errors come out as Django's (IntegrityError for a taken name), as from any query.
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for start in range(0, len(rows), batch_size):
                    for values in prepared_rows(rows[start : start + batch_size]):
                        copy.write_row(values)
        else:
            # SQLite's executemany binds one prepared statement per row, in C.
            sql = "INSERT INTO {} ({}) VALUES ({})".format(table, columns, ", ".join(["%s"] * len(fields)))
            for start in range(0, len(rows), batch_size):
                cursor.executemany(sql, prepared_rows(rows[start : start + batch_size]))
    return len(rows)


def bulk_update_rows(model: type[models.Model], rows: Sequence[dict], fields: Sequence[str], *,
                     batch_size: int = 2000) -> int:  # fmt: skip
    """UPDATE the named fields of many rows, one dict each ({"pk": key, field: value, ...}), and answer how many
    rows were given. One prepared statement run over every row (an executemany: SQLite binds it in C, psycopg
    pipelines it), where `QuerySet.bulk_update` builds a CASE WHEN per field and row and, under SQLite's 999
    parameters a statement, needs one statement per few dozen rows. Nothing is validated, auto_now is not applied
    and no model is instantiated: the caller gives every value, of the right type."""
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    targets = [model._meta.get_field(name) for name in fields]
    key = model._meta.pk
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in targets)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(key.column)} = %s"
    names = [field.name for field in targets]
    prepared = [(index, field) for index, field in enumerate(targets) if not isinstance(field, _PLAIN)]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = []
            for row in rows[start : start + batch_size]:
                values = [row[name] for name in names]
                for index, field in prepared:
                    values[index] = field.get_db_prep_save(values[index], connection)
                values.append(row["pk"])
                batch.append(values)
            cursor.executemany(sql, batch)
    return len(rows)
