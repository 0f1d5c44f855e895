"""The batched import (issue 9, item 9's scale target): the records it writes are the ones row-by-row saves
through alias_create / alias_update write, conflicts and refusals behave as before, and its queries do not grow
with the number of rows."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from aliases.models import EDITABLE_FIELDS, Alias, AliasChange
from aliases.services import AliasVersionConflict, alias_create, alias_import, alias_import_apply, alias_update
from aliases.transfer import (
    EXPORT_CHUNK,
    RowChecker,
    TransferError,
    _load_yaml,
    alias_as_bodhi,
    export_text,
    parse,
    plan_import,
)
from config.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

BASE = {
    "repo": "QuantFactory/Meta-Llama-3-8B-Instruct-GGUF",
    "filename": "Meta-Llama-3-8B-Instruct.Q8_0.gguf",
    "chat_template": "llama3",
}


def existing(name: str, **values) -> Alias:
    return alias_create(data={"alias": name, **BASE, **values}, by=None)


def bodhi(entries: list[dict]) -> str:
    return yaml.safe_dump([{**BASE, **entry} for entry in entries], sort_keys=False)


def many(count: int, prefix: str = "bulk") -> str:
    return bodhi(
        [
            {"alias": f"{prefix}-{number:04d}", "request_params": {"temperature": (number % 10) / 10, "stop": ["</s>"]},
             "context_params": {"n_ctx": 4096, "n_keep": number % 100}}
            for number in range(count)
        ]
    )  # fmt: skip


def one_by_one(rows, *, by, on_conflict: str) -> None:
    """The import as it was before it went in batches: each row through alias_create / alias_update."""
    with transaction.atomic():
        for row in plan_import(rows, on_conflict=on_conflict):
            if row.action == "create":
                alias_create(data=row.values, by=by)
            elif row.action == "update":
                alias_update(alias=row.target, data=row.values, expected_version=row.target.version, by=by)


def records() -> dict[str, list]:
    """Everything an import writes, without keys and times (which differ between two runs)."""
    names = {str(pk): name for pk, name in Alias.objects.values_list("pk", "alias")}
    return {
        "aliases": [
            (alias.values(), alias.source, alias.version, alias.created_by_id, alias.updated_by_id)
            for alias in Alias.objects.order_by("alias")
        ],
        "changes": [
            (
                change.alias.alias if change.alias else None,
                change.alias_name,
                change.action,
                change.version,
                change.changes,
                change.snapshot,
                change.changed_by_id,
            )
            for change in AliasChange.objects.select_related("alias").order_by("pk")
        ],
        "audit": [
            (
                entry.actor_id,
                entry.actor_name,
                entry.kind,
                entry.action,
                names.get(entry.object_id),
                entry.object_repr,
                entry.before,
                entry.after,
            )
            for entry in AuditEntry.objects.order_by("pk")
        ],
    }


def a_file_with_every_kind_of_row() -> str:
    return bodhi(
        [
            {"alias": "fresh-one", "request_params": {"temperature": 0.3, "stop": ["</s>", "###"]}},
            {"alias": "Taken", "request_params": {"temperature": 1.2}, "context_params": {"n_ctx": 8192}},
            {"alias": "same"},
            {"alias": "fresh-two", "chat_template": "phi3", "context_params": {"n_keep": -1, "n_predict": -2}},
            {"alias": "other", "request_params": {"user": "@team", "seed": -5}},
        ]
    )


@pytest.mark.parametrize("on_conflict", ["overwrite", "rename", "skip"])
def test_batched_import_writes_exactly_what_row_by_row_saves_write(editor, on_conflict):
    existing("taken", temperature=0.7)
    existing("same")
    existing("other", top_p=0.5)
    existing("other-2")  # the first free name for a rename of "other" is other-3
    rows_text = a_file_with_every_kind_of_row()

    with transaction.atomic():
        one_by_one(parse(rows_text, "bodhi-yaml"), by=editor, on_conflict=on_conflict)
        expected = records()
        transaction.set_rollback(True)
    before = records()
    result = alias_import(rows=parse(rows_text, "bodhi-yaml"), by=editor, on_conflict=on_conflict)

    assert result.applied
    assert records() == expected
    assert records() != before


def test_each_alias_created_or_updated_gets_one_version_and_one_audit_entry(editor):
    taken = existing("taken", temperature=0.7)
    existing("same")
    existing("other", top_p=0.5)
    result = alias_import(rows=parse(a_file_with_every_kind_of_row(), "bodhi-yaml"), by=editor, on_conflict="overwrite")

    assert result.counts == {"create": 2, "update": 2, "unchanged": 1, "error": 0}
    taken.refresh_from_db()
    assert (taken.alias, taken.version, taken.temperature, taken.n_ctx) == ("Taken", 2, 1.2, 8192)
    assert taken.updated_by == editor
    update = AliasChange.objects.get(alias=taken, version=2)
    assert update.action == "update" and update.changed_by == editor
    assert update.changes == {"alias": ["taken", "Taken"], "temperature": [0.7, 1.2], "n_ctx": [None, 8192]}
    for name in ("fresh-one", "fresh-two", "other"):
        alias = Alias.objects.get(alias=name)
        assert alias.created_by == editor or name == "other"
        assert [(c.action, c.version) for c in alias.changes.all()] == (
            [("create", 1)] if name != "other" else [("update", 2), ("create", 1)]
        )
        entries = AuditEntry.objects.filter(kind="alias", object_id=str(alias.pk)).order_by("pk")
        assert [e.action for e in entries] == (["create"] if name != "other" else ["create", "update"])
        assert entries.last().after == alias.values()
        assert entries.last().actor == editor
    assert not AliasChange.objects.filter(alias__alias="same", version__gt=1).exists()


def test_rename_gives_each_conflicting_row_the_next_free_name():
    for name in ("a", "b", "b-2", "b-3"):
        existing(name)
    text = bodhi([{"alias": "A", "chat_template": "phi3"}, {"alias": "b", "chat_template": "gemma"}])
    result = alias_import(rows=parse(text, "bodhi-yaml"), by=None, on_conflict="rename")

    assert [(row.action, row.alias) for row in result.rows] == [("create", "A-2"), ("create", "b-4")]
    assert Alias.objects.get(alias="a").chat_template == "llama3"
    assert Alias.objects.get(alias="b-4").chat_template == "gemma"
    assert AliasChange.objects.filter(alias_name__in=["A-2", "b-4"], action="create").count() == 2


def test_skip_leaves_existing_aliases_and_records_alone():
    taken = existing("taken")
    changes, entries = AliasChange.objects.count(), AuditEntry.objects.count()
    text = bodhi([{"alias": "taken", "chat_template": "phi3"}, {"alias": "new"}])
    result = alias_import(rows=parse(text, "bodhi-yaml"), by=None, on_conflict="skip")

    assert result.counts == {"create": 1, "update": 0, "unchanged": 1, "error": 0}
    taken.refresh_from_db()
    assert (taken.chat_template, taken.version) == ("llama3", 1)
    assert AliasChange.objects.count() == changes + 1 and AuditEntry.objects.count() == entries + 1


def test_valid_only_writes_the_valid_rows_with_their_records():
    text = bodhi([{"alias": "good"}, {"alias": "bad", "request_params": {"temperature": 9}}, {"alias": "fine"}])
    result = alias_import(rows=parse(text, "bodhi-yaml"), by=None, valid_only=True)

    assert result.applied and result.counts["error"] == 1
    assert result.rows[1].errors == {"temperature": "Must be between 0 and 2 (got 9)."}
    assert result.rows[1].suggestions == {"temperature": 2.0}
    assert sorted(Alias.objects.values_list("alias", flat=True)) == ["fine", "good"]
    assert sorted(AliasChange.objects.values_list("alias_name", flat=True)) == ["fine", "good"]
    assert AuditEntry.objects.filter(kind="alias", action="create").count() == 2


def test_an_import_with_a_refused_row_changes_nothing():
    taken = existing("taken")
    counts = (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count())
    text = bodhi(
        [{"alias": "taken", "chat_template": "phi3"}, {"alias": "new"}, {"alias": "bad", "chat_template": "nope"}]
    )
    result = alias_import(rows=parse(text, "bodhi-yaml"), by=None, on_conflict="overwrite")

    assert not result.applied
    assert result.rows[2].errors["chat_template"].startswith("Use 'embedded', a built-in template")
    assert (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count()) == counts
    taken.refresh_from_db()
    assert taken.chat_template == "llama3"


def test_an_alias_changed_since_the_plan_is_not_overwritten_and_nothing_is_saved():
    taken = existing("taken")
    plan = plan_import(parse(bodhi([{"alias": "new"}, {"alias": "taken", "chat_template": "phi3"}]), "bodhi-yaml"),
                       on_conflict="overwrite")  # fmt: skip
    alias_update(alias=taken, data={"temperature": 0.1}, expected_version=1, by=None)
    counts = (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count())

    with pytest.raises(AliasVersionConflict), transaction.atomic():
        alias_import_apply(plan=plan, by=None)

    assert (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count()) == counts
    taken.refresh_from_db()
    assert (taken.chat_template, taken.temperature, taken.version) == ("llama3", 0.1, 2)


def test_a_name_taken_since_the_plan_is_refused_by_name_and_nothing_is_saved():
    plan = plan_import(parse(bodhi([{"alias": "first"}, {"alias": "Late"}]), "bodhi-yaml"))
    existing("late")
    counts = (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count())

    with pytest.raises(ValidationError) as caught, transaction.atomic():
        alias_import_apply(plan=plan, by=None)

    assert caught.value.message_dict == {"alias": ["An alias named late already exists (names ignore case)."]}
    assert (Alias.objects.count(), AliasChange.objects.count(), AuditEntry.objects.count()) == counts


@pytest.mark.parametrize("on_conflict", ["skip", "overwrite", "rename"])
def test_import_queries_do_not_grow_with_the_rows(django_assert_max_num_queries, on_conflict):
    # Half the names exist already with other values, so the conflict choice has work to do in both sizes.
    taken = [{"alias": f"small-{n:04d}", "chat_template": "phi3"} for n in range(25)]
    taken += [{"alias": f"large-{n:04d}", "chat_template": "phi3"} for n in range(250)]
    alias_import(rows=parse(bodhi(taken), "bodhi-yaml"), by=None)
    small = parse(many(50, "small"), "bodhi-yaml")
    large = parse(many(500, "large"), "bodhi-yaml")
    with CaptureQueriesContext(connection) as small_queries:
        result = alias_import(rows=small, by=None, on_conflict=on_conflict)
    assert result.applied and result.counts["create"] == (50 if on_conflict == "rename" else 25)
    with CaptureQueriesContext(connection) as large_queries:
        result = alias_import(rows=large, by=None, on_conflict=on_conflict)
    # Ten times the rows: look-ups go by batches (500 rows; about 60 names to rename), never by row.
    assert len(large_queries) <= len(small_queries) + 8
    assert result.applied and result.counts["create"] == (500 if on_conflict == "rename" else 250)
    assert result.counts["update"] == (250 if on_conflict == "overwrite" else 0)


# --- the in-memory checks equal the model's ---------------------------------------------------------------------

VALUE_SETS = [
    {},
    {"alias": "bad name"},
    {"alias": "ok", "repo": "no-slash", "filename": "x.bin", "snapshot": "a" * 40 + "A"},
    {"temperature": 2.5, "top_p": -1.0, "max_tokens": 0, "seed": 2**63},
    {"n_ctx": 1024, "n_keep": 2048, "max_tokens": 4096, "n_predict": 1025},
    {"n_ctx": 64, "n_threads": 0, "n_parallel": 300},
    {"stop": ["a", "a"], "user": "x\x00y"},
    {"stop": ["", "b"] * 3},
    {"temperature": math.nan, "top_p": math.inf},
    {"chat_template": "llama2-legacy"},
    {"n_ctx": 0, "n_keep": 10**6, "chat_template": "owner/repo"},
]


def full_clean_errors(values: dict) -> dict[str, str]:
    alias = Alias(source=Alias.Source.USER, **values)
    try:
        alias.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        return {name: " ".join(messages) for name, messages in exc.message_dict.items()}
    return {}


def test_the_row_checker_gives_full_cleans_errors_row_after_row():
    checker = RowChecker()  # one checker for every row, as an import uses it: nothing carries over between rows
    for values in VALUE_SETS + list(reversed(VALUE_SETS)):
        row = {name: None for name in EDITABLE_FIELDS} | {"alias": "name", **BASE, "snapshot": "main", "stop": [],
                                                          "user": ""} | values  # fmt: skip
        _instance, errors = checker.check(row, pk=None)
        assert errors == full_clean_errors(row), values


# --- YAML read straight from the events equals yaml.load -------------------------------------------------------

PLAIN_YAML = [
    "",
    "---\n",
    "alias: x\n",
    "- a: yes\n  b: 0x10\n  c: 1_000\n  d: 2001-12-14t21:59:43.10-05:00\n  e: ~\n  f: .inf\n  g: '1'\n",
    "a: 1\na: 2\n",
    "{a: 1, b: [x, 'y', \"z\\n\"], c: {d: [], e: {}}}\n",
    "1: a\ntrue: b\n1.5: c\nnull: d\n",
    "- 12:30:00\n- 0o17\n- 017\n- +1\n- -.5e3\n- Null\n- off\n",
]


@pytest.mark.parametrize("text", PLAIN_YAML)
def test_plain_yaml_reads_as_yaml_load_reads_it(text):
    assert _load_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x 1\nb: *x\n", "anchors and aliases"),
        ("a: &x 1\n", "anchors and aliases"),
        ("[" * 17 + "]" * 17, "nested more than 16"),
        ("a: b\n---\nc: d\n", "Not valid YAML"),
        ("? [1]\n: 2\n", "Not valid YAML"),
        ("- !!python/object:os.system x\n", "Not valid YAML"),
        ('"unterminated\n', "Not valid YAML"),
    ],
)
def test_yaml_beyond_plain_data_is_read_or_refused_the_careful_way(text, message):
    with pytest.raises(TransferError, match=message):
        _load_yaml(text)


def test_tagged_and_merged_yaml_still_reads_as_the_safe_loader_reads_it():
    for text in ("a: !!str 1\n", "<<: {a: 1}\nb: 2\n"):
        assert _load_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader)


# --- export reads plain rows -----------------------------------------------------------------------------------


def odd_shelf() -> None:
    existing("zz-odd", stop=["é\n", '"q"', "yes"], user="=1+1", temperature=0.0, seed=-5, n_ctx=0, n_keep=-1,
             top_p=1e-7, chat_template="owner/tpl")  # fmt: skip
    existing("plain", chat_template="embedded")
    existing("null", n_threads=8, max_tokens=512)


@pytest.mark.parametrize("fmt", ["bodhi-yaml", "json", "csv"])
def test_a_queryset_exports_as_its_model_instances_export(fmt):
    odd_shelf()
    aliases = Alias.objects.order_by("alias", "pk")
    assert export_text(aliases, fmt) == export_text(list(aliases), fmt)


def test_bodhi_export_reads_back_as_the_bodhi_mapping_of_each_alias():
    odd_shelf()
    aliases = Alias.objects.order_by("alias", "pk")
    assert yaml.safe_load(export_text(aliases, "bodhi-yaml")) == [alias_as_bodhi(alias) for alias in aliases]


def test_export_queries_do_not_grow_with_the_rows(django_assert_max_num_queries):
    alias_import(rows=parse(many(2 * EXPORT_CHUNK + 1), "bodhi-yaml"), by=None)
    # One SELECT per EXPORT_CHUNK rows (fetchmany of one statement on SQLite; a server-side cursor on PostgreSQL).
    with django_assert_max_num_queries(1):
        text = export_text(Alias.objects.order_by("alias", "pk"), "json")
    assert len(json.loads(text)) == 2 * EXPORT_CHUNK + 1


@pytest.mark.parametrize("fmt", ["bodhi-yaml", "json", "csv"])
def test_odd_values_survive_an_export_and_an_import(fmt):
    odd_shelf()
    aliases = Alias.objects.order_by("alias", "pk")
    before = [alias.values() for alias in aliases]
    text = export_text(aliases, fmt)
    Alias.objects.all().delete()
    result = alias_import(rows=parse(text, fmt), by=None)
    assert result.applied, [row.errors for row in result.rows]
    assert [alias.values() for alias in Alias.objects.order_by("alias", "pk")] == before
