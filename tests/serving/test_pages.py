"""The serving page, the preset download (page and API), `manage.py export_preset`, and each alias's exports for
other runtimes (the alias page's "Run elsewhere", its downloads and the API)."""

from __future__ import annotations

import io
import shlex
import zipfile

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

from aliases.models import Alias
from tests.api_errors import assert_error
from tests.serving.conftest import FILENAME, REPO, snapshot_path

pytestmark = pytest.mark.django_db

PRESET_API = "/api/serving/preset.ini"


@pytest.fixture
def shelf(local_file, alias_factory):
    local_file()
    served = alias_factory(alias="tiny:chat", repo=REPO, filename=FILENAME, n_ctx=256, temperature=0.7,
                           n_predict=8, top_p=0.9, seed=7, max_tokens=64, n_parallel=2, n_threads=2,
                           stop=["</s>", "User:", 'say "hi"\n'], chat_template="llama3")  # fmt: skip
    missing = alias_factory(alias="far", repo=REPO, filename="never-pulled.Q4_K_M.gguf", chat_template="chatml")
    return served, missing


def test_the_serving_page_shows_the_preset_and_what_is_not_served(shelf, viewer_client):
    response = viewer_client.get(reverse("serving:index"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "[tiny:CHAT]" in body and "ctx-size = 256" in body
    assert "far</span>: The file is not in the local cache" in body
    assert reverse("serving:preset") in body
    assert 'aria-current="page"' in body and ">Serving</a>" in body


def test_signed_out_visitors_go_to_the_login_page(client):
    response = client.get(reverse("serving:index"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_preset_downloads_from_the_page_and_the_api(shelf, viewer_client, hf_home):
    page = viewer_client.get(reverse("serving:preset"))
    api = viewer_client.get(PRESET_API, HTTP_ACCEPT="text/plain")

    for response in (page, api):
        assert response.status_code == 200
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response["Content-Disposition"] == 'attachment; filename="modeldesk-preset.ini"'
    text = api.content.decode()
    assert text == page.content.decode()
    assert f"model = {snapshot_path(hf_home, REPO, FILENAME)}\n" in text


def test_the_preset_api_needs_a_signed_in_user(client):
    assert_error(client.get(PRESET_API), 401, "authentication_error")
    assert client.post(PRESET_API).status_code == 401


def test_the_preset_api_refuses_other_methods(viewer_client):
    assert_error(viewer_client.post(PRESET_API), 405, "invalid_request_error")


def test_export_preset_writes_the_file_and_its_template_files(shelf, tmp_path, alias_factory):
    alias_factory(alias="tl", repo=REPO, filename=FILENAME, chat_template="tinyllama")
    target = tmp_path / "out" / "models.ini"
    errors = io.StringIO()

    call_command("export_preset", "--output", str(target), stderr=errors)

    text = target.read_text()
    assert "[tiny:CHAT]" in text and f"chat-template-file = {target.parent / 'chat-template.tinyllama.jinja'}" in text
    assert (target.parent / "chat-template.tinyllama.jinja").exists()
    assert "not served: far: The file is not in the local cache" in errors.getvalue()
    assert f"Wrote {target}" in errors.getvalue()

    call_command("export_preset", "--output", str(target), stderr=errors)
    assert f"Unchanged: {target}" in errors.getvalue()


def test_export_preset_prints_to_stdout(shelf):
    out = io.StringIO()

    call_command("export_preset", stdout=out, stderr=io.StringIO())

    assert out.getvalue().startswith("; llama-server router preset") and "[tiny:CHAT]" in out.getvalue()


# --- exports of one alias ----------------------------------------------------------------------------------------


def export_api(name: str, fmt: str) -> str:
    return f"/api/models/{name}/export/{fmt}"


def test_the_llama_server_command_line_serves_the_alias(shelf, viewer_client, hf_home):
    response = viewer_client.get(export_api("tiny:chat", "llama-server"))

    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    command = next(line for line in response.content.decode().splitlines() if not line.startswith("#"))
    assert shlex.split(command) == [
        "llama-server", "--model", str(snapshot_path(hf_home, REPO, FILENAME)), "--alias", "tiny:chat",
        "--ctx-size", "256", "--threads", "2", "--parallel", "2", "--n-predict", "8", "--temp", "0.7",
        "--top-p", "0.9", "--chat-template", "llama3",
    ]  # fmt: skip
    assert "# Stop words are per request" in response.content.decode()


def test_the_ollama_modelfile_holds_what_ollama_supports(shelf, viewer_client, hf_home):
    text = viewer_client.get(export_api("tiny:chat", "ollama")).content.decode()

    lines = text.splitlines()
    assert f'FROM "{snapshot_path(hf_home, REPO, FILENAME)}"' in lines
    for line in ("PARAMETER num_ctx 256", "PARAMETER temperature 0.7", "PARAMETER top_p 0.9",
                 "PARAMETER num_predict 8", "PARAMETER seed 7", "PARAMETER num_thread 2",
                 'PARAMETER stop "</s>"', 'PARAMETER stop "User:"'):  # fmt: skip
        assert line in lines
    assert 'PARAMETER stop """say "hi"\n"""' in text  # a line break: Ollama's triple quotes
    assert any(line.startswith('TEMPLATE "') and "<|start_header_id|>" in line for line in lines)
    assert "OLLAMA_NUM_PARALLEL=2" in text


def test_the_bodhi_yaml_is_the_alias_file_bodhiapp_reads(shelf, viewer_client):
    response = viewer_client.get(export_api("TINY:CHAT", "bodhi"))  # names ignore case

    assert response["Content-Disposition"] == 'attachment; filename="tiny--chat.yaml"'
    data = yaml.safe_load(response.content)
    assert data["alias"] == "tiny:chat" and data["repo"] == REPO and data["chat_template"] == "llama3"
    assert data["request_params"]["stop"] == ["</s>", "User:", 'say "hi"\n']
    assert data["context_params"] == {"n_threads": 2, "n_ctx": 256, "n_parallel": 2, "n_predict": 8}


def test_a_generated_alias_with_a_slash_exports_too(shelf, viewer_client):
    generated = Alias.objects.get(source=Alias.Source.MODEL)

    response = viewer_client.get(export_api(generated.alias, "llama-server"))

    assert response.status_code == 200 and generated.alias in response.content.decode()


def test_export_errors_name_what_is_wrong(shelf, viewer_client):
    assert_error(viewer_client.get(export_api("nobody", "ollama")), 404, "not_found_error", code="alias_not_found")
    assert_error(viewer_client.get(export_api("tiny:chat", "gguf")), 404, "not_found_error", param="fmt")
    error = assert_error(viewer_client.get(export_api("far", "ollama")), 409, "conflict_error", code="not_servable")
    assert "not in the local cache" in error["message"]
    # BodhiApp's YAML needs no local file.
    assert viewer_client.get(export_api("far", "bodhi")).status_code == 200


def test_the_alias_page_offers_the_exports(shelf, viewer_client):
    body = viewer_client.get(reverse("aliases:detail", args=["tiny:chat"])).content.decode()

    assert "Run elsewhere" in body
    for fmt in ("llama-server", "ollama", "bodhi"):
        assert reverse("serving:export", args=[fmt, "tiny:chat"]) in body
    assert "--chat-template llama3" in body

    missing = viewer_client.get(reverse("aliases:detail", args=["far"])).content.decode()
    assert "Not available: The file is not in the local cache" in missing


def test_the_page_downloads_are_files(shelf, viewer_client):
    response = viewer_client.get(reverse("serving:export", args=["ollama", "tiny:chat"]))
    assert response.status_code == 200 and response["Content-Disposition"] == 'attachment; filename="Modelfile"'
    assert viewer_client.get(reverse("serving:export", args=["ollama", "far"])).status_code == 409
    assert viewer_client.get(reverse("serving:export", args=["zip", "tiny:chat"])).status_code == 404


# --- the bulk action's runtime formats ---------------------------------------------------------------------------


def test_bulk_export_as_llama_server_commands_runs_one_per_alias_and_names_those_left_out(shelf, editor_client):
    response = editor_client.post(
        "/api/models/bulk", {"action": "export", "format": "llama-server", "aliases": ["tiny:chat", "far"]},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="aliases.sh"'
    script = b"".join(response.streaming_content).decode()
    commands = [shlex.split(line) for line in script.splitlines() if line.startswith("llama-server ")]
    assert len(commands) == 1 and commands[0][commands[0].index("--alias") + 1] == "tiny:chat"
    single = editor_client.get("/api/models/tiny:chat/export/llama-server").content.decode()
    assert single in script  # the same command as the alias's own export
    assert '# "far" is left out: The file is not in the local cache' in script


def test_bulk_export_as_ollama_is_a_zip_of_modelfiles_with_a_create_script(shelf, editor_client):
    response = editor_client.post(
        reverse("aliases:bulk"), {"action": "export", "format": "ollama", "selected": ["1:tiny:chat", "1:far"]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = sorted(bundle.namelist())
        assert names == ["README.txt", "create-all.sh", "tiny--chat/Modelfile"]
        modelfile = bundle.read("tiny--chat/Modelfile").decode()
        create = bundle.read("create-all.sh").decode()
        readme = bundle.read("README.txt").decode()
    assert modelfile == editor_client.get("/api/models/tiny:chat/export/ollama").content.decode()
    assert "PARAMETER num_ctx 256" in modelfile
    assert "ollama create tiny:chat -f tiny--chat/Modelfile" in create
    assert "far: The file is not in the local cache" in readme


def test_the_bulk_bar_offers_the_runtime_formats(shelf, editor_client):
    body = editor_client.get(reverse("aliases:list")).content.decode()
    assert '<option value="llama-server">llama-server commands (.sh)</option>' in body
    assert '<option value="ollama">Ollama Modelfiles (.zip)</option>' in body
