"""Issue 7, item 1: every value is checked whole, and no hostile input or stored row makes a page answer 500."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from aliases.models import Alias
from modelfiles.models import Download, ModelFile
from tests.api_errors import assert_error

pytestmark = pytest.mark.django_db

GOOD = {"alias": "good", "repo": "owner/name-GGUF", "filename": "model.Q4_K_M.gguf"}


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path):
    """An empty Hugging Face cache of this test's own, and a Hub address where nothing listens: pulls and scans
    the requests set off never read the real cache or reach a network."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def admin_client(client_for, admin_user) -> Client:
    return client_for(admin_user)


def post_json(client: Client, path: str, body, method: str = "post"):
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


# --- every value is checked whole ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alias", "name\n"),
        ("alias", "name\r"),
        ("alias", "na\x00me"),
        ("repo", "owner/name\n"),
        ("repo", "owner/na\x00me"),
        ("filename", "model.gguf\n"),
        ("filename", "dir/mo\x7fdel.gguf"),
        ("filename", "mo\x85del.gguf"),
        ("snapshot", "main\n"),
        ("snapshot", "ma\x00in"),
        ("snapshot", "a" * 40 + "\n"),
        ("chat_template", "llama3\n"),
        ("chat_template", "owner/tmpl\n"),
        ("chat_template", "lla\x00ma3"),
    ],
)
def test_api_refuses_a_text_value_with_a_control_character_anywhere(admin_client, field, value):
    response = post_json(admin_client, "/api/models", {**GOOD, field: value})

    assert_error(response, 400, "invalid_request_error", param=field)
    assert not Alias.objects.exists()


@pytest.mark.parametrize(
    ("request_params", "param"),
    [
        ({"user": "someone\n"}, "user"),
        ({"user": "some\x00one"}, "user"),
        ({"stop": ["a\x00b"]}, "stop"),
        ({"stop": ["\x07"]}, "stop"),
        ({"stop": ["x\ud800"]}, "stop"),
    ],
)
def test_api_refuses_control_characters_in_request_params(admin_client, request_params, param):
    response = post_json(admin_client, "/api/models", {**GOOD, "request_params": request_params})

    assert_error(response, 400, "invalid_request_error", param=param)


def test_stop_words_may_still_be_newlines_and_tabs(admin_client):
    response = post_json(admin_client, "/api/models", {**GOOD, "request_params": {"stop": ["\n", "\t", "\r\n"]}})

    assert response.status_code == 201, response.content
    assert Alias.objects.get().stop == ["\n", "\t", "\r\n"]


def test_api_keeps_values_as_sent_and_refuses_surrounding_spaces(admin_client):
    response = post_json(admin_client, "/api/models", {**GOOD, "alias": " good"})

    assert_error(response, 400, "invalid_request_error", param="alias")


def test_lone_surrogate_in_a_name_is_a_400_not_a_500(admin_client):
    # JSON may spell a lone surrogate (\ud800); the database cannot store it as UTF-8.
    body = '{"alias": "x\\ud800", "repo": "owner/name", "filename": "m.gguf"}'
    response = admin_client.post("/api/models", data=body, content_type="application/json")

    assert_error(response, 400, "invalid_request_error", param="alias")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repo", "owner/name\n"),
        ("repo", "own\x00er/name"),
        ("filename", "model.gguf\n"),
        ("filename", "mo\x00del.gguf"),
        ("revision", "main\n"),
        ("revision", "ma\x00in"),
    ],
)
def test_pull_refuses_control_characters(client_for, operator, field, value):
    body = {"repo": "owner/name", "filename": "model.gguf", "revision": "main", field: value}
    response = post_json(client_for(operator), "/api/modelfiles/pull", body)

    assert_error(response, 400, "invalid_request_error", param=field)
    assert not Download.objects.exists()


def test_pull_refuses_a_filename_too_long_for_the_file_system(client_for, operator):
    # 100 characters but 300 bytes of UTF-8: more than one directory entry can hold.
    name = "é" * 150 + ".gguf"
    response = post_json(client_for(operator), "/api/modelfiles/pull", {"repo": "owner/name", "filename": name})

    error = assert_error(response, 400, "invalid_request_error", param="filename")
    assert "bytes" in error["message"]


def test_alias_refuses_a_filename_segment_too_long_for_the_file_system(admin_client):
    response = post_json(admin_client, "/api/models", {**GOOD, "filename": "dir/" + "ü" * 130 + ".gguf"})

    assert_error(response, 400, "invalid_request_error", param="filename")


# --- NUL in a URL, a query or a body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/foo%00bar",
        "/api/models?search=%00",
        "/api/models?sort=alias%00",
        "/api/modelfiles?search=a%00b",
        "/api/modelfiles/status?status=queued%00",
        "/api/modelfiles/status/%00",
        "/api/models%00",
    ],
)
def test_nul_in_an_api_url_is_a_client_error_in_the_envelope(admin_client, path):
    response = admin_client.get(path)

    # Refused before any query: PostgreSQL fails on NUL in text (a 500), SQLite would look it up.
    assert_error(response, 400, "invalid_request_error", code="nul_character")


@pytest.mark.parametrize("path", ["/aliases/x%00/", "/aliases/?q=%00", "/files/?q=a%00", "/aliases/x%00/edit/"])
def test_nul_in_a_page_url_is_a_client_error(admin_client, path):
    response = admin_client.get(path)

    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content


def test_nul_in_a_form_post_is_a_client_error(admin_client):
    response = admin_client.post("/aliases/-/new/", {"alias": "a", "repo": "owner/name", "x": "a\x00"})

    assert response.status_code == 400
    assert not Alias.objects.exists()


def test_alias_form_refuses_a_control_character_next_to_the_field(admin_client):
    # DEL (and the C1 controls) passed the old filename check, which looked only below U+0020.
    response = admin_client.post("/aliases/-/new/", {"alias": "ab", "repo": "owner/name", "filename": "m\x7f.gguf"})

    assert response.status_code == 200
    assert response.context["form"].errors["filename"]
    assert not Alias.objects.exists()


def test_nul_in_a_form_field_name_is_a_client_error(admin_client):
    response = admin_client.post("/aliases/-/new/", {"al\x00ias": "a"})

    assert response.status_code == 400


# --- sizes and depth -------------------------------------------------------------------------------------------


def test_a_body_larger_than_the_limit_is_a_413_in_the_envelope(admin_client, settings):
    body = json.dumps({**GOOD, "user": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    response = admin_client.post("/api/models", data=body, content_type="application/json")

    error = assert_error(response, 413, "invalid_request_error", code="request_too_large")
    assert "MiB" in error["message"] or "bytes" in error["message"]


def test_a_ten_megabyte_body_is_refused_before_it_is_read(admin_client):
    body = json.dumps({**GOOD, "user": "x" * 10_000_000})
    response = admin_client.post("/api/models", data=body, content_type="application/json")

    assert_error(response, 413, "invalid_request_error", code="request_too_large")


def test_the_body_limit_is_read_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MODELDESK_MAX_BODY_BYTES": "4096", "MODELDESK_VAR_DIR": str(tmp_path), "DEBUG": "1"}
    code = "from django.conf import settings; print(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip().splitlines()[-1] == "4096"


def test_a_smaller_body_limit_applies_to_the_api(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = post_json(admin_client, "/api/models", {**GOOD, "user": "x" * 200})

    assert_error(response, 413, "invalid_request_error", code="request_too_large")


def test_a_large_form_post_gets_a_413_page(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = admin_client.post("/aliases/-/new/", {"alias": "a", "user": "x" * 5000})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert b"too large" in response.content.lower()


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deeply_nested_json_is_a_400(admin_client, depth):
    body = '{"alias": ' + "[" * depth + "]" * depth + "}"
    response = admin_client.post("/api/models", data=body, content_type="application/json")

    assert_error(response, 400, "invalid_request_error", code="parse_error")


def test_json_within_the_depth_limit_is_still_read(admin_client):
    response = post_json(admin_client, "/api/models", {**GOOD, "request_params": {"stop": ["a"]}})

    assert response.status_code == 201


# --- bad rows already stored -----------------------------------------------------------------------------------


BAD_ALIASES = [
    {"alias": "newline\n", "repo": "owner/name", "filename": "m.gguf"},
    {"alias": "ctrl\x01char", "repo": "owner/name", "filename": "m.gguf"},
    {"alias": "repo-bad", "repo": "owner/name\n", "filename": "m.gguf", "snapshot": "main\n"},
    {"alias": "template-bad", "repo": "owner/name", "filename": "m.gguf\n", "chat_template": "llama3\n"},
    {"alias": "bad name with spaces", "repo": "owner/name", "filename": "m.gguf"},
]


@pytest.fixture
def bad_rows(db):
    Alias.objects.bulk_create([Alias(**values) for values in BAD_ALIASES])
    ModelFile.objects.bulk_create(
        [
            ModelFile(
                repo="owner/name",
                filename="m.gguf",
                snapshot="a" * 40,
                refs=["main\n", "main"],
                size=1,
                etag="e" * 64,
                modified_at="2026-01-01T00:00:00Z",
            ),
            ModelFile(
                repo="owner/na\nme",
                filename="dir\x01/m\u2028.gguf",
                snapshot="b" * 40,
                # Not NUL: PostgreSQL cannot store it at all (text or jsonb), so it can never be found stored.
                refs=["ma\x01in"],
                size=2,
                etag="f" * 64,
                modified_at="2026-01-01T00:00:00Z",
            ),
        ]
    )
    Download.objects.bulk_create(
        [
            Download(repo="owner/name\n", filename="m.gguf\n", revision="main\n"),
            Download(repo="owner/x", filename="m.gguf", revision="v\x01", status=Download.Status.FAILED),
        ]
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/aliases/",
        "/aliases/?q=new",
        "/aliases/?q=ctrl",
        "/aliases/?sort=-alias",
        "/files/",
        "/files/downloads/",
        "/api/models",
        "/api/models?search=newline",
        "/api/modelfiles",
        "/api/modelfiles/status",
    ],
)
@pytest.mark.parametrize("role", ["viewer", "editor", "admin_user"])
def test_lists_render_with_bad_rows_stored(bad_rows, client_for, request, path, role):
    response = client_for(request.getfixturevalue(role)).get(path)

    assert response.status_code == 200, response.content[:2000]


def test_a_bad_alias_row_is_shown_without_a_link(bad_rows, client_for, editor):
    content = client_for(editor).get("/aliases/").content.decode()

    assert "newline" in content
    assert 'href="/aliases/newline\n' not in content
    assert 'href="/aliases/newline%0A' not in content


def test_the_data_check_lists_stored_rows_that_break_the_rules(bad_rows):
    from aliases.checks import stored_rows_check

    messages = [str(message.msg) for message in stored_rows_check(app_configs=None)]
    text = "\n".join(messages)

    assert "newline" in text and "ctrl" in text and "repo-bad" in text and "template-bad" in text
    assert "bad name with spaces" in text
    assert "Download" in text and "ModelFile" in text


def test_manage_py_check_warns_about_stored_rows(bad_rows, capsys):
    call_command("check")
    out = capsys.readouterr()

    assert "aliases.W001" in out.err + out.out


def test_the_data_check_is_quiet_on_clean_rows(alias_factory):
    from aliases.checks import stored_rows_check

    alias_factory.create_batch(3)

    assert stored_rows_check(app_configs=None) == []


def _repair_migration():
    import importlib

    return importlib.import_module("aliases.migrations.0004_repair_stored_values")


def test_the_repair_migration_strips_a_trailing_newline_when_the_result_is_valid_and_free(db):
    from django.apps import apps

    Alias.objects.bulk_create(
        [
            Alias(alias="fixable\n", repo="owner/name\n", filename="m.gguf\r\n", snapshot="main\n", user="me\n"),
            Alias(alias="taken\n", repo="owner/name", filename="m.gguf"),
            Alias(alias="TAKEN", repo="owner/name", filename="m.gguf"),
            Alias(alias="odd\x01inside", repo="owner/name", filename="m.gguf", chat_template="llama3\n"),
        ]
    )

    _repair_migration().repair(apps, None)

    fixed = Alias.objects.get(alias="fixable")
    assert (fixed.repo, fixed.filename, fixed.snapshot, fixed.user) == ("owner/name", "m.gguf", "main", "me")
    assert Alias.objects.filter(alias="taken\n").exists()  # "taken" is TAKEN's, ignoring case: left for an admin
    left = Alias.objects.get(alias="odd\x01inside")
    assert left.chat_template == "llama3"
    from aliases.checks import stored_rows_check

    text = "\n".join(str(message.msg) for message in stored_rows_check())
    assert "taken" in text and "odd" in text and "fixable" not in text


def test_the_json_parser_enforces_the_limit_without_a_content_length(settings):
    # Under ASGI a body may arrive without a Content-Length, so the middleware cannot see its size.
    import io

    from config.api import ApiError
    from config.api_parsers import JSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    with pytest.raises(ApiError) as raised:
        JSONParser().parse(io.BytesIO(json.dumps({"user": "x" * 2000}).encode()))

    assert raised.value.status_code == 413
    assert JSONParser().parse(io.BytesIO(b'{"user": "x"}')) == {"user": "x"}
