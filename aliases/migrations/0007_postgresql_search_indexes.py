"""PostgreSQL only (a no-op elsewhere): trigram indexes for the quick search, and the indexes descending sorts
with NULLS LAST need.

The quick search is `UPPER(col::text) LIKE UPPER('%x%')` over alias, repo and filename (Django's `icontains` on
PostgreSQL); a pg_trgm GIN index on exactly that expression serves it. The API sorts unset values last both ways:
ascending, a plain (col, id) index (migration 0006) does; descending needs (col DESC NULLS LAST, id DESC).
"""

from django.db import migrations

SEARCHED = ("alias", "repo", "filename")
NULLABLE_SORTED = ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "seed",
                   "n_seed", "n_threads", "n_ctx", "n_parallel", "n_predict", "n_keep")  # fmt: skip

INDEXES = {
    **{f"alias_trgm_{column}": f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)' for column in SEARCHED},
    **{f"alias_sort_{column}_desc": f'("{column}" DESC NULLS LAST, "id" DESC)' for column in NULLABLE_SORTED},
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "aliases_alias" {definition}')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
    # The extension stays: other tables may use it, and dropping it needs more rights than creating it.


class Migration(migrations.Migration):
    dependencies = [("aliases", "0006_sort_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
