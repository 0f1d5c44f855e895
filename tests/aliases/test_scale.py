"""The alias list at scale (issue 9, item 9): sorts served by indexes, pages read from the nearer end, unset values
still last, the PostgreSQL-only migration a no-op elsewhere."""

from __future__ import annotations

import importlib
import re

import pytest
from django.db import connection
from django.urls import reverse

from aliases.api import ALIAS_LIST_QUERY
from aliases.models import Alias
from config.api import ListParams
from config.paging import page_rows

pytestmark = pytest.mark.django_db

API_URL = "/api/models"
LIST_URL = reverse("aliases:list")
TEMPERATURES = (0.7, None, 0.2, 1.5, None, 0.2, 0.9, None, 1.1, 0.7, 0.3, None, 2.0)


@pytest.fixture
def shelf(alias_factory):
    # Ties (0.2, 0.7) and unset values spread among the rows, created in this order (primary keys ascending).
    return [alias_factory(alias=f"m-{number:02d}", temperature=value) for number, value in enumerate(TEMPERATURES)]


def expected_temperature_order(shelf, *, descending: bool) -> list[str]:
    set_rows = [alias for alias in shelf if alias.temperature is not None]
    unset = [alias for alias in shelf if alias.temperature is None]
    set_rows.sort(key=lambda alias: (alias.temperature, alias.pk), reverse=descending)
    unset.sort(key=lambda alias: alias.pk, reverse=descending)
    return [alias.alias for alias in set_rows + unset]


@pytest.mark.parametrize("sort_order", ["asc", "desc"])
def test_api_pages_keep_unset_values_last_from_either_end(viewer_client, shelf, sort_order):
    seen = []
    for page in range(1, 6):  # pages of 3: the later ones are read from the far end, reversed
        body = viewer_client.get(
            API_URL, {"sort": "temperature", "sort_order": sort_order, "page_size": 3, "page": page}
        ).json()
        assert body["total"] == len(TEMPERATURES)
        seen += [row["alias"] for row in body["data"]]

    assert seen == expected_temperature_order(shelf, descending=sort_order == "desc")


@pytest.mark.parametrize("sort", ["-n_ctx", "repo", "-alias", ""])
def test_list_pages_read_from_the_far_end_match_one_whole_page(client_for, viewer, alias_factory, sort):
    for number in range(23):
        alias_factory(
            alias=f"Row-{number:02d}", repo=f"org{number % 4}/Model-GGUF", n_ctx=(None, 2048, 4096)[number % 3]
        )
    client = client_for(viewer)
    query = {"sort": sort} if sort else {}
    whole = re.findall(r'<tr data-alias="([^"]+)"', client.get(LIST_URL, {**query, "per_page": 100}).content.decode())
    paged = []
    for page in (1, 2, 3):
        content = client.get(LIST_URL, {**query, "per_page": 10, "page": page}).content.decode()
        paged += re.findall(r'<tr data-alias="([^"]+)"', content)

    assert len(whole) == 23
    assert paged == whole


def test_page_rows_equals_slicing_at_every_offset(alias_factory):
    for number in range(9):
        alias_factory(alias=f"s-{number}", temperature=None if number % 3 else number / 10)
    ordered = Alias.objects.order_by("temperature", "-pk")
    everything = list(ordered)
    for offset in range(11):
        for limit in (1, 2, 4):
            assert (
                page_rows(ordered, offset=offset, limit=limit, total=len(everything))
                == everything[offset : offset + limit]
            ), (offset, limit)


def test_nulls_last_is_asked_for_only_on_nullable_columns():
    assert ALIAS_LIST_QUERY.sorts["temperature"].nullable
    assert not ALIAS_LIST_QUERY.sorts["repo"].nullable
    params = ListParams(page=1, page_size=30, sort="repo", sort_order="desc", search="")
    sql = str(Alias.objects.order_by(*ALIAS_LIST_QUERY.order_by(params)).query)
    assert "NULLS" not in sql.upper()


def sort_plan(sql: str, params) -> str:
    """The plan of a query, in the database's own words, one line per node joined by " / "."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A handful of rows: the planner would rightly scan and sort them. With both made dear it still can, so a
            # plan that sorts means no index matches the sort. An incremental sort is made dear too: with the table's
            # statistics left by earlier tests it may pick an index on the first key and sort ties by id, which says
            # nothing about whether the (key, id) index serves the whole order.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_incremental_sort"):
                cursor.execute(f"SET LOCAL {setting} = off")
            cursor.execute("EXPLAIN " + sql, params)
            return " / ".join(row[0].strip() for row in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " / ".join(row[-1] for row in cursor.fetchall())


@pytest.mark.parametrize("sort", list(ALIAS_LIST_QUERY.sorts))
@pytest.mark.parametrize("sort_order", ["asc", "desc"])
def test_every_api_sort_reads_an_index(alias_factory, sort, sort_order):
    for number in range(5):
        alias_factory(alias=f"i-{number}")
    params = ListParams(page=2, page_size=30, sort=sort, sort_order=sort_order, search="")
    keys = Alias.objects.order_by(*ALIAS_LIST_QUERY.order_by(params)).values("pk")[30:60]
    plan = sort_plan(*keys.query.sql_with_params())

    if connection.vendor == "postgresql":
        assert "Index" in plan, plan
        assert not any(node.lstrip("-> ").startswith(("Sort", "Incremental Sort")) for node in plan.split(" / ")), plan
    else:
        assert "USING" in plan and "INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor cannot run inside the test's transaction
def test_postgresql_migration_is_a_no_op_on_sqlite():
    migration = importlib.import_module("aliases.migrations.0007_postgresql_search_indexes")
    if connection.vendor == "postgresql":
        # There it does create them (the test database was migrated).
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'aliases_alias'")
            assert set(migration.INDEXES) <= {row[0] for row in cursor.fetchall()}
        return
    with connection.schema_editor() as editor:
        migration.create(None, editor)
        migration.drop(None, editor)
        migration.create(None, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        names = {row[0] for row in cursor.fetchall()}

    assert names.isdisjoint(migration.INDEXES)
    assert {"alias_sort_alias", "alias_sort_temperature", "alias_sort_updated_at"} <= names  # migration 0006's


@pytest.mark.parametrize(
    "name",
    ["llama3:instruct", "Owner/Repo-GGUF:Q4_K_M", "a b", "ü-naïve", "100%", "what?", "x#y", "~tilde", "semi;colon",
     "a+b&c=d", "ends/", "new"],
)  # fmt: skip
@pytest.mark.parametrize("view_name", ["aliases:detail", "aliases:edit", "aliases:delete"])
def test_alias_url_is_what_reverse_gives(view_name, name):
    from aliases.tables import alias_url

    assert alias_url(view_name, name) == reverse(view_name, args=[name])


@pytest.mark.parametrize("name", ["ends\n", "", "two\nlines"])
def test_alias_url_is_none_for_names_no_url_can_hold(name):
    from aliases.tables import alias_url

    assert alias_url("aliases:detail", name) is None


def test_page_rows_of_a_distinct_queryset_slices_it_plainly(alias_factory):
    for number in range(7):
        alias_factory(alias=f"d-{number}", repo=f"org/R{number % 3}-GGUF")
    ordered = Alias.objects.filter(repo__contains="R").distinct().order_by("repo", "pk")
    everything = list(ordered)
    assert page_rows(ordered, offset=0, limit=3, total=7) == everything[:3]
    assert page_rows(ordered, offset=5, limit=3, total=7) == everything[5:]
