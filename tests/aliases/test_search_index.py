"""The quick search served by an index on SQLite (migration 0008's FTS5 trigram table): the same rows as the plain
case-insensitive substring LIKE for any names and any search text, and the index kept in step by every write
path (the ORM, config/bulk.py's raw INSERTs, raw UPDATEs and DELETEs)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliases.models import Alias
from aliases.search import FULLTEXT_TABLE, alias_search, parse_search
from config.bulk import bulk_insert
from config.search import text_search

pytestmark = pytest.mark.django_db

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the FTS5 index exists on SQLite only (PostgreSQL uses pg_trgm, 0007)"
)

# Letters of both cases, LIKE's wildcards and escape, FTS5 syntax, and non-ASCII letters whose case LIKE does
# not fold on SQLite but the trigram index does (É/é, Σ/σ/ς, the Kelvin sign, dotted and dotless i, ß).
ALPHABET = "abcAB01_%\\\"'*^:-()/. +NEARORéÉΣσςKİıßẞ🦙"
NAME = st.text(alphabet=ALPHABET, min_size=1, max_size=12)


def like_search(text: str) -> list[int]:
    """Today's search without any index: the field terms' and the free text's `icontains` alone."""
    parsed = parse_search(text)
    return sorted(text_search(Alias.objects.filter(parsed.condition), ("alias", "repo", "filename"), parsed.text)
                  .values_list("pk", flat=True))  # fmt: skip


def indexed_search(text: str) -> list[int]:
    return sorted(alias_search(Alias.objects.all(), text).values_list("pk", flat=True))


def outcome(search, text: str) -> list[int] | str:
    """The rows found, or the error a bad field value (`repo:` with nothing after it) raises."""
    try:
        return search(text)
    except ValidationError as error:
        return f"error: {error.messages}"


def swap_case(text: str, flips: list[bool]) -> str:
    return "".join(
        char.swapcase() if flip else char for char, flip in zip(text, flips + [False] * len(text), strict=False)
    )


@st.composite
def shelves_and_searches(draw):
    rows = draw(st.lists(st.tuples(NAME, NAME, NAME), min_size=1, max_size=12))
    # Mostly a piece of a stored value with some letters' case changed, so that searches find something.
    source = draw(st.sampled_from([value for row in rows for value in row]))
    start = draw(st.integers(0, len(source)))
    piece = source[start : start + draw(st.integers(0, 8))]
    piece = swap_case(piece, draw(st.lists(st.booleans(), max_size=len(piece))))
    text = draw(st.one_of(st.just(piece), NAME, st.builds("{}:{}".format, st.sampled_from(["repo", "alias", "file"]),
                                                         st.just(piece))))  # fmt: skip
    return rows, text


def test_search_finds_exactly_what_a_substring_like_finds():
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(shelves_and_searches())
    def check(case):
        rows, text = case
        with transaction.atomic():
            Alias.objects.bulk_create(
                Alias(alias=f"{index}{alias}", repo=repo, filename=filename)
                for index, (alias, repo, filename) in enumerate(rows)
            )
            try:
                assert outcome(indexed_search, text) == outcome(like_search, text), text
            finally:
                transaction.set_rollback(True)

    check()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llama", ["Llama-chat", "mistral-x"]),  # alias of one, repo of the other, any case
        ("LLAMA", ["Llama-chat", "mistral-x"]),
        ("ll", ["Llama-chat", "mistral-x"]),  # too short for trigrams: the LIKE alone
        ("q4_k", ["mistral-x"]),  # `_` is a letter, not LIKE's any-character
        ("q4%k", []),
        ("50%", ["percent"]),
        ('y"hi"', ["quoted"]),  # double quotes inside the FTS5 string
        ("NEAR(a b)", []),  # FTS5 syntax is text
        ("éclair", ["éclair"]),
        # SQLite's LIKE folds ASCII only, and the index's wider folding must not add rows; PostgreSQL's UPPER folds
        # every letter.
        ("ÉCLAIR", ["éclair"] if connection.vendor == "postgresql" else []),
        ("repo:LLAMA", ["mistral-x"]),
        ("file:q4_K_m", ["mistral-x"]),
        ("alias:chat", ["Llama-chat"]),
    ],
)
def test_search_terms_are_literal_and_case_insensitive_like_before(text, expected):
    Alias.objects.create(alias="Llama-chat", repo="acme/Chat-GGUF", filename="chat.Q8_0.gguf")
    Alias.objects.create(alias="mistral-x", repo="someone/llama-GGUF", filename="m.Q4_K_M.gguf")
    Alias.objects.create(alias="percent", repo="acme/p-GGUF", filename="50%.gguf")
    Alias.objects.create(alias="quoted", repo="acme/q-GGUF", filename='say"hi".gguf')
    Alias.objects.create(alias="éclair", repo="acme/e-GGUF", filename="e.gguf")
    found = sorted(alias_search(Alias.objects.all(), text).values_list("alias", flat=True))
    assert found == sorted(expected)
    assert indexed_search(text) == like_search(text)


def fulltext_rows(text: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rowid FROM {FULLTEXT_TABLE} WHERE {FULLTEXT_TABLE} MATCH %s", [f'"{text}"'])
        return {row[0] for row in cursor.fetchall()}


def assert_index_in_step() -> None:
    with connection.cursor() as cursor:  # rank 1: compare the index with the content table's rows
        cursor.execute(f"INSERT INTO {FULLTEXT_TABLE}({FULLTEXT_TABLE}, rank) VALUES ('integrity-check', 1)")


@sqlite_only
def test_every_write_path_keeps_the_index_in_step():
    bulk_insert(Alias, [{"alias": f"bulk-{n}", "repo": "acme/Walrus-GGUF", "filename": f"w{n}.gguf"} for n in range(5)])
    created = Alias.objects.create(alias="orm-made", repo="acme/Otter-GGUF", filename="o.gguf")
    assert len(fulltext_rows("walrus")) == 5
    assert fulltext_rows("otter") == {created.pk}

    Alias.objects.filter(pk=created.pk).update(repo="acme/Beaver-GGUF")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE aliases_alias SET filename = 'renamed.gguf' WHERE alias = 'bulk-0'")
        cursor.execute("UPDATE aliases_alias SET n_ctx = 4096")  # no indexed column: the index is left alone
        cursor.execute("DELETE FROM aliases_alias WHERE alias = 'bulk-1'")
    assert fulltext_rows("otter") == set()
    assert fulltext_rows("beaver") == {created.pk}
    assert fulltext_rows("renamed") == set(Alias.objects.filter(alias="bulk-0").values_list("pk", flat=True))
    assert len(fulltext_rows("walrus")) == 4
    Alias.objects.filter(alias="bulk-2").delete()
    assert len(fulltext_rows("walrus")) == 3
    assert_index_in_step()
    assert names_found("beaver") == ["orm-made"]


def names_found(text: str) -> list[str]:
    return sorted(alias_search(Alias.objects.all(), text).values_list("alias", flat=True))


@sqlite_only
def test_the_index_serves_the_search_and_its_count(alias_factory):
    alias_factory.create_batch(3)
    queryset = alias_search(Alias.objects.all(), "repo-1 file:model")
    for sql, params in (queryset.order_by("alias", "pk")[:30].query.sql_with_params(),
                        queryset.values("pk").query.sql_with_params()):  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [row[-1] for row in cursor.fetchall()]
        assert any(f"{FULLTEXT_TABLE} VIRTUAL TABLE INDEX" in line for line in plan), plan
        assert not any(line.startswith("SCAN aliases_alias") and "USING" not in line and "VIRTUAL" not in line
                       for line in plan), plan  # fmt: skip


@sqlite_only
@pytest.mark.django_db(transaction=True)  # SQLite's schema editor refuses to run inside the test's transaction
def test_the_migration_backfills_and_reverses(alias_factory):
    from django.db.migrations.executor import MigrationExecutor

    made = alias_factory(alias="before-index", repo="acme/Heron-GGUF")
    executor = MigrationExecutor(connection)
    executor.migrate([("aliases", "0007_postgresql_search_indexes")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE %s", [f"{FULLTEXT_TABLE}%"])
        assert cursor.fetchall() == []
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # every app back to its latest, as the other tests need
    assert fulltext_rows("heron") == {made.pk}
    assert_index_in_step()


def test_the_api_search_uses_it_with_the_same_answer(client, django_user_model, alias_factory):
    alias_factory(alias="chat-a", repo="acme/Heron-GGUF")
    alias_factory(alias="chat-b", repo="acme/Egret-GGUF")
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.get("/api/models", {"search": "HERON"})
    assert response.status_code == 200
    assert [row["alias"] for row in response.json()["data"]] == ["chat-a"]
    page = client.get(reverse("aliases:list"), {"q": "egret"})
    assert page.status_code == 200
    assert "chat-b" in page.content.decode() and "chat-a" not in page.content.decode()


def paged_search(text: str, order, *, limit: int) -> list[list[int]]:
    """Every page of a search in `order`, as page_rows reads them."""
    from config.paging import page_rows

    queryset = alias_search(Alias.objects.all(), text).order_by(*order)
    total = queryset.count()
    return [
        [row.pk for row in page_rows(queryset, offset=offset, limit=limit, total=total)]
        for offset in range(0, total, limit)
    ]


def sliced_search(text: str, order, *, limit: int) -> list[list[int]]:
    keys = list(text_search(Alias.objects.all(), ("alias", "repo", "filename"), text)
                .order_by(*order).values_list("pk", flat=True))  # fmt: skip
    return [keys[offset : offset + limit] for offset in range(0, len(keys), limit)]


@pytest.mark.parametrize("order", [("-updated_at", "-pk"), ("repo", "pk"), ("-repo", "-pk"), ("temperature", "pk")])
def test_pages_of_a_search_are_its_rows_in_order_whichever_way_they_are_read(order):
    from datetime import timedelta

    from django.utils import timezone

    # Matches spread through the table ("q4x", one row in three) and bunched at one end of the repo order
    # ("zoo/…", the last 200 by repo): the page is looked for among the table's first rows where that can pay
    # (found there, or not when the matches are bunched at the far end), and read through the index where not.
    rows = [{"alias": f"m-{number}" + (":q4x" if number % 3 == 0 else ":q8x"),
             "repo": f"zoo/r-{number}" if number >= 400 else f"acme/r-{number:03d}",
             "filename": f"f-{number}.gguf", "temperature": (number * 7 % 11) / 10}
            for number in range(600)]  # fmt: skip
    bulk_insert(Alias, rows)
    now = timezone.now()
    for alias in Alias.objects.all():
        Alias.objects.filter(pk=alias.pk).update(updated_at=now - timedelta(seconds=alias.pk * 37 % 601))
    for text in ("q4x", "zoo/", "m-1"):
        for limit in (3, 30):
            assert paged_search(text, order, limit=limit) == sliced_search(text, order, limit=limit), (text, limit)


@sqlite_only
def test_a_page_of_many_matches_is_looked_for_near_the_start_not_sorted_whole():
    from config.paging import page_rows

    bulk_insert(Alias, [{"alias": f"m-{number}" + (":q4x" if number % 2 else ":q8x"), "repo": f"acme/r-{number}",
                         "filename": "f.gguf"} for number in range(400)])  # fmt: skip
    queryset = alias_search(Alias.objects.all(), "q4x").order_by("repo", "pk")
    seen = []

    def keep(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        page = page_rows(queryset, offset=0, limit=10, total=200)
    assert [row.alias for row in page] == [row.alias for row in queryset[:10]]
    # Neither the page's keys nor its rows go through the trigram index: the keys are looked for among the first
    # rows of the order.
    assert seen and not any(FULLTEXT_TABLE in sql for sql in seen), seen
    assert Alias.objects.all().without_search_index() is None
    assert "MATCH" not in str(queryset.without_search_index().query)
