"""Alias import and export (issue 9, item 3): formats, the plan, the API, the commands and the pages."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from aliases.models import Alias, AliasChange
from aliases.services import alias_create, alias_import
from aliases.transfer import TransferError, export_text, parse, plan_import
from tests.factories import AliasFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
IMPORT_URL = "/api/models/import"
EXPORT_URL = "/api/models/export"


def make(name: str = "llama3:instruct", **values) -> Alias:
    data = {
        "alias": name,
        "repo": "QuantFactory/Meta-Llama-3-8B-Instruct-GGUF",
        "filename": "Meta-Llama-3-8B-Instruct.Q8_0.gguf",
        "chat_template": "llama3",
        **values,
    }
    return alias_create(data=data, by=None)


def shelf() -> list[Alias]:
    return [
        make("llama3:instruct", temperature=0.7, stop=["<|eot_id|>", "=cmd|' /C calc'!A0"], n_ctx=8192, n_keep=-1),
        make("phi3:mini", chat_template="phi3", seed=-5, n_predict=-2, user="@team", top_p=1.0),
        make("plain", chat_template="embedded"),
    ]


def comparable(aliases) -> list[dict]:
    return sorted((alias.values() for alias in aliases), key=lambda values: values["alias"])


# --- formats ---------------------------------------------------------------------------------------------------


def test_bodhi_single_file_form_imports_one_alias():
    result = alias_import(rows=parse((FIXTURES / "phi3--mini.yaml").read_bytes(), "bodhi-yaml"), by=None)
    assert result.applied and result.counts == {"create": 1, "update": 0, "unchanged": 0, "error": 0}
    alias = Alias.objects.get(alias="phi3:mini")
    assert alias.snapshot == "5eef2ce24766d31909c0b269fe90c817a8f263fb"
    assert (alias.temperature, alias.top_p, alias.stop) == (0.2, 0.9, ["<|end|>", "<|user|>"])
    assert (alias.n_ctx, alias.n_keep, alias.chat_template) == (4096, 24, "phi3")


def test_bodhi_list_form_with_a_refused_row_imports_nothing_and_offers_closest_values():
    result = alias_import(rows=parse((FIXTURES / "models.yaml").read_bytes(), "bodhi-yaml"), by=None)
    assert not result.applied and Alias.objects.count() == 0
    assert [row.action for row in result.rows] == ["create", "create", "error"]
    legacy = result.rows[2]
    assert set(legacy.errors) == {"chat_template", "temperature"}
    assert legacy.suggestions == {"chat_template": "llama2", "temperature": 2.0}


def test_valid_only_imports_the_valid_rows():
    result = alias_import(rows=parse((FIXTURES / "models.yaml").read_bytes(), "bodhi-yaml"), by=None, valid_only=True)
    assert result.applied
    assert sorted(Alias.objects.values_list("alias", flat=True)) == ["llama3:instruct", "tinyllama:chat"]
    assert Alias.objects.get(alias="llama3:instruct").snapshot == "main"  # BodhiApp's snapshot is optional


def test_accepting_the_offered_values_fixes_the_row():
    rows = parse((FIXTURES / "models.yaml").read_bytes(), "bodhi-yaml")
    result = alias_import(rows=rows, by=None, fixes={3: ["chat_template", "temperature"]})
    assert result.applied and result.counts["create"] == 3
    legacy = Alias.objects.get(alias="llama2:legacy")
    assert (legacy.chat_template, legacy.temperature) == ("llama2", 2.0)


@pytest.mark.parametrize("fmt", ["bodhi-yaml", "json", "csv"])
def test_export_then_import_into_an_empty_database_gives_equal_aliases(fmt):
    before = comparable(shelf())
    text = export_text(Alias.objects.order_by("alias"), fmt)
    Alias.objects.all().delete()
    result = alias_import(rows=parse(text.encode(), fmt), by=None)
    assert result.applied and result.counts["create"] == 3, [row.as_dict() for row in result.rows]
    assert comparable(Alias.objects.all()) == before


def test_bodhi_export_leaves_out_embedded_template_and_unset_params():
    shelf()
    exported = yaml.safe_load(export_text(Alias.objects.order_by("alias"), "bodhi-yaml"))
    plain = next(item for item in exported if item["alias"] == "plain")
    assert set(plain) == {"alias", "repo", "filename", "snapshot"}
    llama = next(item for item in exported if item["alias"] == "llama3:instruct")
    assert llama["context_params"] == {"n_ctx": 8192, "n_keep": -1}


def test_csv_export_quotes_formula_cells_and_encodes_stop_as_json():
    shelf()
    rows = list(csv.DictReader(io.StringIO(export_text(Alias.objects.order_by("alias"), "csv"))))
    phi3 = next(row for row in rows if row["alias"] == "phi3:mini")
    assert phi3["user"] == "'@team"
    llama = next(row for row in rows if row["alias"] == "llama3:instruct")
    assert json.loads(llama["stop"]) == ["<|eot_id|>", "=cmd|' /C calc'!A0"]
    assert llama["temperature"] == "0.7" and llama["n_keep"] == "-1"


def test_json_import_accepts_the_api_list_envelope(editor_client):
    shelf()
    listed = editor_client.get("/api/models").json()
    Alias.objects.all().delete()
    result = alias_import(rows=parse(json.dumps(listed), "json"), by=None)
    assert result.counts["create"] == 3 and result.applied


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (b"alias: caf\xe9", "bodhi-yaml", "not UTF-8"),
        (b"a: &x [1]\nb: *x\n", "bodhi-yaml", "anchors"),
        (b"[" * 50 + b"]" * 50, "bodhi-yaml", "nested"),
        (b"[" * 100_000 + b"]" * 100_000, "json", "nested"),
        (b"alias: [unclosed", "bodhi-yaml", "Not valid YAML"),
        (b'{"alias": "x"}', "json", "a list of aliases"),
        (b"name,repo\nx,y\n", "csv", "Unknown CSV columns"),
    ],
)
def test_unreadable_files_are_refused_whole(content, fmt, message):
    with pytest.raises(TransferError, match=message):
        parse(content, fmt)


def test_control_characters_and_wrong_types_are_refused_per_row():
    rows = parse(
        json.dumps(
            [
                {"alias": "bad\u0007name", "repo": "a/b", "filename": "x.gguf"},
                {"alias": "typed", "repo": "a/b", "filename": "x.gguf", "request_params": {"temperature": True}},
                {"alias": "extra", "repo": "a/b", "filename": "x.gguf", "colour": "red"},
            ]
        ),
        "json",
    )
    plan = plan_import(rows)
    assert [row.action for row in plan] == ["error"] * 3
    assert "Control characters" in plan[0].errors["alias"]
    assert plan[0].suggestions == {"alias": "bad-name"}
    assert plan[1].errors == {"temperature": "Must be a number."}
    assert plan[2].errors == {"colour": "Unknown field."}


def test_cross_field_rule_offers_n_ctx():
    rows = parse(b"alias: a\nrepo: o/r\nfilename: f.gguf\ncontext_params: {n_ctx: 2048, n_keep: 4096}\n", "bodhi-yaml")
    (row,) = plan_import(rows)
    assert row.action == "error" and row.suggestions == {"n_keep": 2048}


def test_duplicate_names_in_one_file_are_refused():
    rows = parse(
        b"- {alias: a, repo: o/r, filename: f.gguf}\n- {alias: A, repo: o/r, filename: g.gguf}\n", "bodhi-yaml"
    )
    plan = plan_import(rows)
    assert [row.action for row in plan] == ["create", "error"]
    assert "row 1" in plan[1].errors["alias"]


# --- conflicts -------------------------------------------------------------------------------------------------

CHANGED = b"alias: LLAMA3:instruct\nrepo: QuantFactory/Meta-Llama-3-8B-Instruct-GGUF\nfilename: Meta-Llama-3-8B-Instruct.Q8_0.gguf\nchat_template: llama3\nrequest_params: {temperature: 0.1}\n"  # noqa: E501


def test_conflict_skip_keeps_the_existing_alias():
    existing = make()
    result = alias_import(rows=parse(CHANGED, "bodhi-yaml"), by=None, on_conflict="skip")
    assert [row.action for row in result.rows] == ["unchanged"] and "skipped" in result.rows[0].note
    existing.refresh_from_db()
    assert existing.temperature is None and existing.version == 1


def test_conflict_overwrite_updates_with_a_version_and_change_record(editor):
    existing = make()
    result = alias_import(rows=parse(CHANGED, "bodhi-yaml"), by=editor, on_conflict="overwrite")
    assert [row.action for row in result.rows] == ["update"]
    existing.refresh_from_db()
    assert (existing.alias, existing.temperature, existing.version) == ("LLAMA3:instruct", 0.1, 2)
    change = AliasChange.objects.filter(alias=existing).first()
    assert change.action == "update" and change.changed_by == editor


def test_conflict_rename_creates_a_free_name():
    make()
    make("LLAMA3:instruct-2")
    result = alias_import(rows=parse(CHANGED, "bodhi-yaml"), by=None, on_conflict="rename")
    assert [(row.action, row.alias) for row in result.rows] == [("create", "LLAMA3:instruct-3")]
    assert Alias.objects.get(alias="LLAMA3:instruct-3").temperature == 0.1


def test_identical_rows_are_unchanged():
    shelf()
    text = export_text(Alias.objects.all(), "json")
    result = alias_import(rows=parse(text, "json"), by=None, on_conflict="overwrite")
    assert result.counts == {"create": 0, "update": 0, "unchanged": 3, "error": 0}
    assert set(Alias.objects.values_list("version", flat=True)) == {1}


def test_generated_aliases_are_not_overwritten():
    AliasFactory(alias="owner/repo:Q4_K_M", source=Alias.Source.MODEL, repo="owner/repo", filename="m.Q4_K_M.gguf")
    rows = parse(b"alias: owner/repo:Q4_K_M\nrepo: owner/repo\nfilename: other.gguf\n", "bodhi-yaml")
    (row,) = plan_import(rows, on_conflict="overwrite")
    assert row.action == "error"


# --- API -------------------------------------------------------------------------------------------------------


def test_api_dry_run_answers_rows_and_counts_and_saves_nothing(editor_client):
    response = editor_client.post(
        f"{IMPORT_URL}?format=bodhi-yaml&dry_run=1",
        data=(FIXTURES / "models.yaml").read_bytes(),
        content_type="application/yaml",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["applied"] is False and body["dry_run"] is True
    assert body["counts"] == {"create": 2, "update": 0, "unchanged": 0, "error": 1}
    assert body["rows"][2]["alias"] == "llama2:legacy" and body["rows"][2]["action"] == "error"
    assert set(body["rows"][2]["errors"]) == {"chat_template", "temperature"}
    assert body["rows"][2]["suggestions"]["chat_template"] == "llama2"
    assert Alias.objects.count() == 0


def test_api_import_as_multipart_with_valid_only(editor_client):
    upload = io.BytesIO((FIXTURES / "models.yaml").read_bytes())
    upload.name = "models.yaml"
    response = editor_client.post(f"{IMPORT_URL}?format=bodhi-yaml&valid_only=1", data={"file": upload})
    assert response.status_code == 200, response.content
    assert response.json()["applied"] is True
    assert Alias.objects.count() == 2


def test_api_import_csv_body(editor_client):
    shelf()
    text = export_text(Alias.objects.all(), "csv")
    Alias.objects.all().delete()
    response = editor_client.post(f"{IMPORT_URL}?format=csv", data=text, content_type="text/csv")
    assert response.status_code == 200 and response.json()["counts"]["create"] == 3


@pytest.mark.parametrize(
    ("query", "param"), [("format=xml", "format"), ("format=json&on_conflict=merge", "on_conflict")]
)
def test_api_import_bad_parameters_are_400(editor_client, query, param):
    response = editor_client.post(f"{IMPORT_URL}?{query}", data="[]", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_api_import_unreadable_file_is_400(editor_client):
    response = editor_client.post(f"{IMPORT_URL}?format=json", data=b"\xff\xfe", content_type="application/json")
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]["message"]


def test_api_import_is_for_editors(viewer_client, operator_client):
    for client in (viewer_client, operator_client):
        response = client.post(f"{IMPORT_URL}?format=json", data="[]", content_type="application/json")
        assert response.status_code == 403


def test_api_export_follows_search_and_filters(viewer_client):
    shelf()
    response = viewer_client.get(f"{EXPORT_URL}?format=json&search=phi3")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="aliases.json"'
    data = json.loads(b"".join(response.streaming_content))
    assert [item["alias"] for item in data] == ["phi3:mini"]
    csv_response = viewer_client.get(f"{EXPORT_URL}?format=csv&source=model")
    assert b"".join(csv_response.streaming_content).decode().strip().count("\n") == 0  # the header only


def test_api_export_bad_format_is_400(viewer_client):
    assert viewer_client.get(f"{EXPORT_URL}?format=xls").status_code == 400


def test_alias_named_export_is_still_reachable_in_another_case(viewer_client):
    make("export")
    assert viewer_client.get("/api/models/Export").json()["alias"] == "export"


# --- commands --------------------------------------------------------------------------------------------------


def test_commands_round_trip(tmp_path):
    before = comparable(shelf())
    out = tmp_path / "aliases.csv"
    call_command("export_aliases", "--format", "csv", "--output", str(out))
    Alias.objects.all().delete()
    stdout = io.StringIO()
    call_command("import_aliases", str(out), stdout=stdout)
    assert "3 create" in stdout.getvalue()
    assert comparable(Alias.objects.all()) == before


def test_import_command_reports_refused_rows_and_exits_1():
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("import_aliases", str(FIXTURES / "models.yaml"), str(FIXTURES / "phi3--mini.yaml"), stdout=stdout)
    assert exited.value.code == 1
    assert "llama2:legacy: error" in stdout.getvalue() and "closest valid" in stdout.getvalue()
    assert Alias.objects.count() == 0


# --- pages -----------------------------------------------------------------------------------------------------

PAGE_URL = "/aliases/-/import/"


def upload(client, name: str, content: bytes, **data):
    handle = io.BytesIO(content)
    handle.name = name
    return client.post(PAGE_URL, data={"file": handle, "step": "preview", **data})


def test_page_preview_shows_each_row_and_saves_nothing(editor_client):
    response = upload(editor_client, "models.yaml", (FIXTURES / "models.yaml").read_bytes())
    assert response.status_code == 200
    plan = response.context["plan"]
    assert [(row.alias, row.action) for row in plan] == [
        ("llama3:instruct", "create"),
        ("tinyllama:chat", "create"),
        ("llama2:legacy", "error"),
    ]
    html = response.content.decode()
    assert 'value="3:chat_template"' in html and "<code>llama2</code>" in html
    assert Alias.objects.count() == 0


def test_page_apply_with_an_error_imports_nothing(editor_client):
    upload(editor_client, "models.yaml", (FIXTURES / "models.yaml").read_bytes())
    response = editor_client.post(PAGE_URL, data={"step": "apply", "on_conflict": "skip"})
    assert response.status_code == 200
    assert "Nothing was imported" in response.content.decode()
    assert Alias.objects.count() == 0


def test_page_apply_with_accepted_values_imports_every_row(editor_client):
    upload(editor_client, "models.yaml", (FIXTURES / "models.yaml").read_bytes())
    response = editor_client.post(
        PAGE_URL, data={"step": "apply", "fix": ["3:chat_template", "3:temperature"]}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/aliases/"
    assert "Imported: 3 created" in response.content.decode()
    assert Alias.objects.get(alias="llama2:legacy").chat_template == "llama2"


def test_page_valid_only_and_conflict_choice(editor_client):
    make("tinyllama:chat")
    upload(editor_client, "models.yaml", (FIXTURES / "models.yaml").read_bytes())
    response = editor_client.post(
        PAGE_URL, data={"step": "apply", "valid_only": "1", "on_conflict": "rename"}, follow=True
    )
    assert "Imported: 2 created, 0 updated, 0 unchanged, 1 refused rows left out." in response.content.decode()
    assert Alias.objects.filter(alias="tinyllama:chat-2").exists()


def test_page_refuses_an_unreadable_file(editor_client):
    response = upload(editor_client, "x.yaml", b"alias: \xff")
    assert response.status_code == 400 and "not UTF-8" in response.content.decode()


def test_page_import_is_for_editors(viewer_client, operator_client):
    for client in (viewer_client, operator_client):
        assert client.get(PAGE_URL).status_code == 403
        assert upload(client, "models.yaml", b"[]").status_code == 403


def test_list_shows_import_for_editors_and_export_links_with_the_filters(editor_client, viewer_client):
    shelf()
    html = editor_client.get("/aliases/?q=phi3").content.decode()
    assert 'href="/aliases/-/import/"' in html
    assert 'href="/aliases/-/export/?format=csv&amp;q=phi3"' in html
    viewer_html = viewer_client.get("/aliases/?q=phi3").content.decode()
    assert 'href="/aliases/-/import/"' not in viewer_html
    response = viewer_client.get("/aliases/-/export/?format=json&q=phi3")
    assert [item["alias"] for item in json.loads(b"".join(response.streaming_content))] == ["phi3:mini"]
