"""SQLite only (a no-op elsewhere): an FTS5 trigram index over alias, repo and filename for the quick search.

`LIKE '%x%'` cannot use a B-tree index, so on SQLite every substring search read the whole table. The FTS5 table
`aliases_alias_search` (external content: it stores only the index, the text stays in aliases_alias, rowid = id)
with the `trigram` tokenizer (SQLite 3.34 or later) finds the rows holding a substring of three or more characters;
aliases/search.py narrows by it and keeps the LIKE, so results stay exactly LIKE's.

Triggers keep it in step with every write, the ORM's and raw SQL's alike (config/bulk.py's INSERTs, bench UPDATEs).
An external-content index must be told the old values of a row it removes, which the triggers do. A later
migration that makes SQLite remake aliases_alias (most AlterField/RemoveField do: new table, copy, drop, rename)
drops these triggers with the old table: it must recreate them (run `create` again), or writes stop being indexed
and searches miss new rows (tests/aliases/test_search_index.py then fails).
"""

from django.db import migrations

TABLE = "aliases_alias_search"
COLUMNS = ("alias", "repo", "filename")

_NAMES = ", ".join(COLUMNS)
_NEW = ", ".join(f"new.{column}" for column in COLUMNS)
_OLD = ", ".join(f"old.{column}" for column in COLUMNS)
_REMOVE = f"INSERT INTO {TABLE}({TABLE}, rowid, {_NAMES}) VALUES ('delete', old.id, {_OLD});"
_ADD = f"INSERT INTO {TABLE}(rowid, {_NAMES}) VALUES (new.id, {_NEW});"
TRIGGERS = {
    f"{TABLE}_insert": f"AFTER INSERT ON aliases_alias BEGIN {_ADD} END",
    f"{TABLE}_delete": f"AFTER DELETE ON aliases_alias BEGIN {_REMOVE} END",
    # Only when an indexed column changes: most updates (parameters, timestamps) leave the index alone.
    f"{TABLE}_update": f"AFTER UPDATE OF {_NAMES} ON aliases_alias BEGIN {_REMOVE} {_ADD} END",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({_NAMES}, content='aliases_alias', "
        "content_rowid='id', tokenize='trigram')"
    )
    for name, definition in TRIGGERS.items():
        schema_editor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {definition}")
    # The rows already there (and a clean slate if the index had drifted).
    schema_editor.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("aliases", "0007_postgresql_search_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
