"""The cache sync costs a bounded number of queries whatever the number of files (issue 8, item 11).

Rows, generated aliases and audit entries are written in batched statements, the stored rows and the alias names
are read in one query each, and the sync after a pull walks only that repo's folder. The figures against
huggingface_hub's scan_cache_dir are in docs/PERFORMANCE.md (bench/cache_sync.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aliases.models import Alias
from config.audit.models import AuditEntry
from modelfiles import cache
from modelfiles.models import ModelFile
from modelfiles.services import modelfile_sync
from tests.gguf_files import tiny_gguf
from tests.modelfiles import COMMIT, OTHER_COMMIT, cache_file

pytestmark = pytest.mark.django_db

# A first sync of 200 files: the scan report (2), the stored rows (1), the generated aliases and the names taken
# (2), a savepoint pair for the alias sync (2), and batched INSERTs of rows, aliases and audit entries (SQLite
# takes at most 999 parameters per statement: 99 files, 35 aliases or 99 audit entries per INSERT). Before the
# batching it was about 5 queries per file, over 1,000 for these 200. Then the GGUF header step: one read of the
# rows, its UPDATE batches (about 20 columns: some 13 rows a statement on SQLite) and one read of the files that
# can load.
FIRST_SYNC_MAX_QUERIES = 25 + 2 + 16
# Rows per UPDATE statement of the header step on SQLite (999 parameters, two per column and row).
HEADER_ROWS_PER_BATCH = 13


def fill_cache(hf_home: Path, files: int, *, commit: str = COMMIT, start: int = 0) -> None:
    """`files` GGUF files over ten repos, each with a name of its own and so an alias of its own (`repo:model-N`)."""
    for number in range(start, start + files):
        cache_file(hf_home, repo_of(number), f"model-{number}.gguf", commit=commit,
                   content=_gguf(number))  # fmt: skip


_HEADER = None


def _gguf(number: int) -> bytes:
    """A real tiny GGUF (only files that can load get a generated alias), its blob made unique by filler after
    the tensor data, which readers ignore."""
    global _HEADER
    if _HEADER is None:
        _HEADER = tiny_gguf()
    return _HEADER + number.to_bytes(4, "big")


def repo_of(number: int) -> str:
    return f"acme/Model-{number % 10}-GGUF"


def queries_of(action) -> list[str]:
    with CaptureQueriesContext(connection) as context:
        action()
    return [query["sql"] for query in context.captured_queries]


def test_a_first_sync_of_200_files_costs_a_bounded_number_of_queries(hf_home, django_assert_max_num_queries):
    fill_cache(hf_home, 200)

    with django_assert_max_num_queries(FIRST_SYNC_MAX_QUERIES):
        counts = modelfile_sync()

    assert (counts["created"], counts["present"], counts["skipped"]) == (200, 200, [])
    assert ModelFile.objects.filter(present=True).count() == 200
    assert Alias.objects.filter(source=Alias.Source.MODEL).count() == 200
    # Still one audit entry for the scan, and one per generated alias, as before the batching.
    assert AuditEntry.objects.filter(kind="modelfile", action="scan").count() == 1
    assert AuditEntry.objects.filter(kind="alias", action="create").count() == 200
    created = AuditEntry.objects.filter(kind="alias", object_repr="acme/Model-3-GGUF:model-3").get()
    assert created.object_id == str(Alias.objects.get(alias="acme/Model-3-GGUF:model-3").pk)


def test_the_query_count_does_not_grow_with_the_files_beyond_the_batches(hf_home):
    fill_cache(hf_home, 20)
    few = len(queries_of(modelfile_sync))
    fill_cache(hf_home, 180, start=20)
    ModelFile.objects.all().delete()
    Alias.objects.all().delete()

    many = len(queries_of(modelfile_sync))

    # Ten times the files: only the extra INSERT batches (99 files, 35 aliases, 99 audit entries each) and the
    # header step's UPDATE batches on top.
    assert many <= few + 2 + 5 + 2 + -(-180 // HEADER_ROWS_PER_BATCH), (few, many)


def test_an_unchanged_rescan_reads_and_writes_almost_nothing(hf_home, django_assert_max_num_queries):
    fill_cache(hf_home, 200)
    modelfile_sync()
    entries = AuditEntry.objects.count()

    # 8 for the rows, the aliases and the report; the names already checked and the blobs already read (2), the
    # other locations' loadable files (1), nothing written; 1 reads this cache's location (files per host).
    with django_assert_max_num_queries(8 + 2 + 1 + 1):
        counts = modelfile_sync()

    assert (counts["created"], counts["updated"], counts["removed"]) == (0, 0, 0)
    assert AuditEntry.objects.count() == entries


def test_changed_and_vanished_files_are_written_in_batches(hf_home, django_assert_max_num_queries):
    fill_cache(hf_home, 200)
    modelfile_sync()
    # `main` moves to a new commit holding the first hundred files: their aliases follow it; the old snapshot
    # loses its other hundred files, whose aliases go.
    fill_cache(hf_home, 100, commit=OTHER_COMMIT)
    for number in range(200):
        (
            hf_home / "hub" / cache.repo_folder_name(repo_of(number)) / "snapshots" / COMMIT / f"model-{number}.gguf"
        ).unlink()
    before = Alias.objects.get(alias="acme/Model-3-GGUF:model-3")

    with django_assert_max_num_queries(40):
        counts = modelfile_sync()

    assert (counts["created"], counts["removed"], counts["present"]) == (100, 200, 100)
    moved = Alias.objects.get(alias="acme/Model-3-GGUF:model-3")
    assert (moved.pk, moved.snapshot, moved.version) == (before.pk, OTHER_COMMIT, before.version + 1)
    assert moved.updated_at > before.updated_at
    assert Alias.objects.filter(source=Alias.Source.MODEL).count() == 100
    assert AuditEntry.objects.filter(kind="alias", action="update").count() == 100
    gone = AuditEntry.objects.filter(kind="alias", action="delete")
    assert gone.count() == 100 and all(entry.before["snapshot"] == COMMIT for entry in gone)


def test_a_file_whose_blob_changes_is_updated_in_place(hf_home):
    link = cache_file(hf_home, "acme/Tiny-GGUF", "tiny.Q4_K_M.gguf")
    modelfile_sync()
    row = ModelFile.objects.get()
    blob = link.parent.parent.parent / "blobs" / link.readlink().name
    blob.write_bytes(b"GGUF" + b"\x00" * 100)
    os.utime(blob, (1_700_000_000, 1_700_000_000))

    counts = modelfile_sync()

    assert counts["updated"] == 1
    changed = ModelFile.objects.get()
    assert (changed.pk, changed.size, changed.modified_at.timestamp()) == (row.pk, 104, 1_700_000_000)
    assert changed.scanned_at > row.scanned_at


def test_alias_names_are_looked_up_in_one_query_through_the_case_insensitive_index(hf_home):
    # Repo ids on disk are case-sensitive, alias names are not: the first repo's alias keeps the name.
    cache_file(hf_home, "ACME/MODEL-3-GGUF", "MODEL-3.gguf", content=_gguf(1_000_001))
    modelfile_sync(repo="ACME/MODEL-3-GGUF")
    fill_cache(hf_home, 20)

    sql = queries_of(lambda: modelfile_sync(repo="acme/Model-3-GGUF"))

    lookups = [query for query in sql if 'LOWER("aliases_alias"."alias") IN' in query]
    # One to find the names already taken, one to read back the keys of the aliases just inserted.
    assert len(lookups) == 2, sql
    assert not [query for query in sql if "UPPER(" in query or " LIKE " in query]
    generated = Alias.objects.filter(source=Alias.Source.MODEL)
    assert sorted(generated.values_list("alias", flat=True)) == [
        "ACME/MODEL-3-GGUF:MODEL-3",
        "acme/Model-3-GGUF:model-13",
    ]


def test_two_files_whose_alias_names_differ_only_in_case_get_one_alias(hf_home):
    cache_file(hf_home, "acme/Tiny-GGUF", "a/tiny.Q4_K_M.gguf", content=_gguf(1_000_002))
    cache_file(hf_home, "acme/Tiny-GGUF", "b/tiny.q4_k_m.gguf", content=_gguf(1_000_003))

    modelfile_sync()

    assert list(Alias.objects.filter(source=Alias.Source.MODEL).values_list("alias", "filename")) == [
        ("acme/Tiny-GGUF:Q4_K_M", "a/tiny.Q4_K_M.gguf")
    ]


def sql_plan(sql: str, params=()) -> str:
    """The database's plan for a query, as one line. On PostgreSQL sequential scans are priced out first: a table
    of a few rows is scanned whatever indexes it has, and the question is whether the index can serve it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " ".join(str(row[-1]) for row in cursor.fetchall())


def query_plan(queryset) -> str:
    return sql_plan(*queryset.query.sql_with_params())


def uses_unique_name_index(plan: str) -> bool:
    # SQLite: "SEARCH ... USING INDEX alias_name_unique_ci"; PostgreSQL: "Index Scan using alias_name_unique_ci".
    # The planner may as well take the sort index that leads with the same LOWER(alias) (alias_sort_alias).
    return any(name in plan for name in ("alias_name_unique_ci", "alias_sort_alias")) and "index" in plan.lower()


def test_by_name_ignores_case_and_is_served_by_the_unique_index(alias_factory):
    alias = alias_factory(alias="Llama3:Instruct")

    assert Alias.objects.by_name("llama3:INSTRUCT").get() == alias
    # `alias__iexact` (LIKE here, UPPER() on PostgreSQL) made this a scan of every alias.
    assert uses_unique_name_index(query_plan(Alias.objects.by_name("x").order_by()))


def test_the_names_look_up_of_the_sync_is_served_by_the_unique_index(hf_home):
    fill_cache(hf_home, 20)
    lookups = [sql for sql in queries_of(modelfile_sync) if 'LOWER("aliases_alias"."alias") IN' in sql]

    # The names already taken, then the keys of the aliases just inserted: both through the index.
    assert len(lookups) == 2
    assert all(uses_unique_name_index(sql_plan(sql)) for sql in lookups)


def test_the_sync_after_a_pull_walks_only_that_repo(hf_home, django_assert_max_num_queries):
    fill_cache(hf_home, 50)
    modelfile_sync()
    # Another repo with an entry the walker would report, if it looked there.
    other = hf_home / "hub" / "models--acme--Other-GGUF" / "snapshots" / COMMIT
    other.mkdir(parents=True)
    os.symlink("../../blobs/" + "0" * 64, other / "broken.Q4_K_M.gguf")
    cache_file(hf_home, "acme/Model-3-GGUF", "pulled.Q4_K_M.gguf", content=_gguf(1_000_004))

    scan = cache.scan_gguf(repo="acme/Model-3-GGUF")
    # The queries of a first sync of one file (the header step's and the names already checked included), and
    # the savepoints of the test's own transaction.
    with django_assert_max_num_queries(15 + 3):
        counts = modelfile_sync(repo="acme/Model-3-GGUF")

    assert scan.skipped == [] and {item.repo for item in scan.files} == {"acme/Model-3-GGUF"}
    assert (counts["created"], counts["present"], counts["skipped"]) == (1, 6, [])
    assert ModelFile.objects.filter(present=True).count() == 51
    assert "broken.Q4_K_M.gguf" in str(modelfile_sync()["skipped"])  # the whole-cache scan does look there
