from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from aliases.models import Alias, AliasChange
from aliases.services import (
    AliasReadOnlyError,
    AliasVersionConflict,
    alias_create,
    alias_delete,
    alias_update,
)

pytestmark = pytest.mark.django_db

VALID = {"alias": "llama3:instruct", "repo": "meta/Llama-3-GGUF", "filename": "llama3.Q4_K_M.gguf"}

# (field, just inside, just outside) at every edge of every bound in DESIGN.md.
EDGES = [
    ("temperature", 0, -0.0001),
    ("temperature", 2, 2.0001),
    ("top_p", 0, -0.01),
    ("top_p", 1, 1.01),
    ("frequency_penalty", -2, -2.01),
    ("frequency_penalty", 2, 2.01),
    ("presence_penalty", -2, -2.01),
    ("presence_penalty", 2, 2.01),
    ("max_tokens", 1, 0),
    ("max_tokens", 1_048_576, 1_048_577),
    ("seed", -(2**63), -(2**63) - 1),
    ("seed", 2**63 - 1, 2**63),
    ("n_seed", 0, -1),
    ("n_seed", 4_294_967_295, 4_294_967_296),
    ("n_threads", 1, 0),
    ("n_threads", 1024, 1025),
    ("n_ctx", 0, -1),
    ("n_ctx", 128, 127),
    ("n_ctx", 1_048_576, 1_048_577),
    ("n_parallel", 1, 0),
    ("n_parallel", 256, 257),
    ("n_predict", -2, -3),
    ("n_predict", 1, 0),
    ("n_predict", 1_048_576, 1_048_577),
    ("n_keep", -1, -2),
    ("n_keep", 1_048_576, 1_048_577),
]


def errors_of(**fields) -> dict[str, list[str]]:
    alias = Alias(**{**VALID, **fields})
    try:
        alias.full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


@pytest.mark.parametrize(("field", "inside", "outside"), EDGES)
def test_bounds_accept_the_edge_and_reject_just_past_it(field, inside, outside):
    assert errors_of(**{field: inside}) == {}
    errors = errors_of(**{field: outside})
    assert list(errors) == [field]
    assert "between" in errors[field][0]


@pytest.mark.parametrize("value", [-1, 0, 1])
def test_n_predict_between_the_specials_and_the_range(value):
    assert ("n_predict" in errors_of(n_predict=value)) is (value == 0)


def test_out_of_range_message_names_the_allowed_range_and_the_value():
    assert errors_of(temperature=2.5)["temperature"] == ["Must be between 0 and 2 (got 2.5)."]
    assert errors_of(n_ctx=100)["n_ctx"] == ["Must be 0, or between 128 and 1,048,576 (got 100)."]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_rejected(value):
    assert "temperature" in errors_of(temperature=value)


def test_unset_parameters_are_valid():
    assert errors_of() == {}


@pytest.mark.parametrize(
    ("field", "n_ctx", "value", "ok"),
    [
        ("n_keep", 512, 512, True),
        ("n_keep", 512, 513, False),
        ("max_tokens", 512, 513, False),
        ("n_predict", 512, 513, False),
        ("n_predict", 512, -1, True),
        ("max_tokens", 0, 100_000, True),  # n_ctx 0 = the model's default: nothing to compare with
        ("max_tokens", None, 100_000, True),
    ],
)
def test_token_counts_may_not_exceed_n_ctx(field, n_ctx, value, ok):
    errors = errors_of(n_ctx=n_ctx, **{field: value})
    assert (field not in errors) is ok
    if not ok:
        assert "n_ctx (512)" in errors[field][0]


@pytest.mark.parametrize(
    ("stop", "ok"),
    [
        ([], True),
        (["a", "b", "c", "d"], True),
        (["a", "b", "c", "d", "e"], False),
        (["x" * 128], True),
        (["x" * 129], False),
        ([""], False),
        (["a", "a"], False),
        ("not a list", False),
        ([1], False),
    ],
)
def test_stop_words_rules(stop, ok):
    assert ("stop" not in errors_of(stop=stop)) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("llama3:instruct", True),
        ("Qwen2.5-7B_q4", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("-leading-dash", False),
        (":leading", False),
        ("has space", False),
        ("has/slash", False),
        ("", False),
    ],
)
def test_alias_name_rules(name, ok):
    assert ("alias" not in errors_of(alias=name)) is ok


@pytest.mark.parametrize(
    ("repo", "ok"),
    [
        ("TheBloke/Llama-2-7B-GGUF", True),
        ("a/b", True),
        ("noslash", False),
        ("a/b/c", False),
        ("a--b/c", False),
        ("a/b..c", False),
        ("-a/b", False),
        # The Hub refuses a part that ends in '.' or '-' (a pull of one was a 500 from huggingface_hub).
        ("hO/y.", False),
        ("a-/b", False),
        ("a/b-c.d", True),
        ("a/" + "b" * 95, False),
    ],
)
def test_repo_rules(repo, ok):
    assert ("repo" not in errors_of(repo=repo)) is ok


@pytest.mark.parametrize(
    ("filename", "ok"),
    [
        ("model.gguf", True),
        ("sub/dir/model.Q4.GGUF", True),
        ("model.bin", False),
        ("/abs.gguf", False),
        ("a//b.gguf", False),
        ("../x.gguf", False),
        ("a/./b.gguf", False),
        ("a\\b.gguf", False),
    ],
)
def test_filename_rules(filename, ok):
    assert ("filename" not in errors_of(filename=filename)) is ok


@pytest.mark.parametrize(
    ("snapshot", "ok"),
    [
        ("main", True),
        ("v1.0", True),
        ("refs/pr/1", True),
        ("0123456789abcdef0123456789abcdef01234567", True),
        ("0123456789ABCDEF0123456789ABCDEF01234567", False),
        ("bad..ref", False),
        ("ends/", False),
        ("", False),
    ],
)
def test_snapshot_rules(snapshot, ok):
    assert ("snapshot" not in errors_of(snapshot=snapshot)) is ok


@pytest.mark.parametrize(
    ("template", "ok"),
    [
        ("embedded", True),
        ("llama3", True),
        ("chatml", True),
        ("owner/repo", True),
        ("nope", False),
        ("a/b/c", False),
    ],
)
def test_chat_template_rules(template, ok):
    assert ("chat_template" not in errors_of(chat_template=template)) is ok


def test_over_long_user_is_rejected():
    assert "user" not in errors_of(user="u" * 256)
    assert "user" in errors_of(user="u" * 257)


def test_names_are_unique_regardless_of_case(editor):
    alias_create(data=VALID, by=editor)
    with pytest.raises(ValidationError) as excinfo:
        alias_create(data={**VALID, "alias": VALID["alias"].upper()}, by=editor)
    assert "already exists" in excinfo.value.message_dict["alias"][0]
    assert Alias.objects.count() == 1


def test_database_refuses_a_case_insensitive_duplicate_even_without_validation():
    Alias.objects.create(**VALID)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alias.objects.create(**{**VALID, "alias": "LLAMA3:INSTRUCT"})


def test_create_records_who_and_what(editor):
    alias = alias_create(data={**VALID, "temperature": 0.7}, by=editor)
    assert (alias.version, alias.created_by, alias.updated_by) == (1, editor, editor)
    change = AliasChange.objects.get()
    assert (change.action, change.version, change.changed_by) == ("create", 1, editor)
    assert change.changes["temperature"] == [None, 0.7]


def test_update_bumps_version_and_records_the_change(editor):
    alias = alias_create(data=VALID, by=editor)
    alias = alias_update(alias=alias, data={"temperature": 1.0}, expected_version=1, by=editor)
    assert alias.version == 2
    assert AliasChange.objects.filter(action="update").get().changes == {"temperature": [None, 1.0]}


def test_update_without_changes_keeps_the_version(editor):
    alias = alias_create(data=VALID, by=editor)
    assert alias_update(alias=alias, data={"repo": VALID["repo"]}, expected_version=1, by=editor).version == 1


def test_stale_edit_is_refused_and_says_what_changed(editor, make_user):
    other = make_user("editor", "olga-other")
    alias = alias_create(data=VALID, by=editor)
    alias_update(alias=alias, data={"temperature": 0.2, "n_ctx": 4096}, expected_version=1, by=other)
    with pytest.raises(AliasVersionConflict) as excinfo:
        alias_update(alias=alias, data={"temperature": 1.5}, expected_version=1, by=editor)
    conflict = excinfo.value
    assert conflict.changed_by == "olga-other"
    assert {change.field: (change.base, change.theirs) for change in conflict.changes} == {
        "temperature": (None, 0.2),
        "n_ctx": (None, 4096),
    }
    alias.refresh_from_db()
    assert (alias.temperature, alias.version) == (0.2, 2)


def test_invalid_update_changes_nothing(editor):
    alias = alias_create(data=VALID, by=editor)
    with pytest.raises(ValidationError):
        alias_update(alias=alias, data={"temperature": 0.5, "top_p": 3}, expected_version=1, by=editor)
    alias.refresh_from_db()
    assert (alias.temperature, alias.top_p, alias.version) == (None, None, 1)
    assert AliasChange.objects.count() == 1


def test_unknown_fields_are_rejected(editor):
    with pytest.raises(ValidationError) as excinfo:
        alias_create(data={**VALID, "temprature": 1}, by=editor)
    assert "temprature" in excinfo.value.message_dict


def test_model_aliases_are_read_only(editor):
    alias = Alias.objects.create(**VALID, source=Alias.Source.MODEL)
    with pytest.raises(AliasReadOnlyError):
        alias_update(alias=alias, data={"temperature": 1}, expected_version=1, by=editor)
    with pytest.raises(AliasReadOnlyError):
        alias_delete(alias=alias, by=editor)
    assert Alias.objects.filter(pk=alias.pk).exists()


def test_delete_records_the_last_values(editor):
    alias = alias_create(data=VALID, by=editor)
    alias_delete(alias=alias, by=editor)
    assert not Alias.objects.exists()
    change = AliasChange.objects.get(action="delete")
    assert change.alias_name == VALID["alias"]
    assert change.alias is None
