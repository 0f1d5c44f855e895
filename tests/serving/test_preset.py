"""The router preset rendered from the shelf: every key, the chat templates, split sets, and aliases that cannot
be served (listed with their reason, never written half). Files are real tiny GGUFs in a test cache, scanned."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aliases.models import Alias
from config.serving.preset import preset_build
from config.serving.router import alias_for_router_id, router_id
from tests.gguf_files import tiny_gguf
from tests.modelfiles import COMMIT, cache_file
from tests.serving.conftest import FILENAME, REPO, snapshot_path, user_aliases

pytestmark = pytest.mark.django_db


def sections(text: str) -> dict[str, dict[str, str]]:
    """The preset as llama-server's INI reader sees it (common/preset.cpp): a value ends at `;`, `#` or the line's
    end and loses its surrounding blanks; comment and blank lines are skipped."""
    parsed: dict[str, dict[str, str]] = {"default": {}}
    current = "default"
    for line in re.split(r"\r\n|\n|\r", text):
        stripped = line.strip(" \t")
        if not stripped or stripped[0] in ";#":
            continue
        header = re.fullmatch(r"\[[ \t]*([^\]]+?)[ \t]*\][ \t]*(?:[;#].*)?", stripped)
        if header:
            current = header.group(1)
            parsed[current] = {}
            continue
        pair = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*([^;#]*?)[ \t]*(?:[;#].*)?", stripped)
        assert pair, f"llama-server would refuse the preset at {line!r}"
        parsed[current][pair.group(1)] = pair.group(2)
    return parsed


def unserved(preset) -> dict[str, str]:
    return {item.alias: item.reason for item in preset.unserved}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plain", "plain"),
        ("tiny:chat", "tiny:CHAT"),
        ("llama3:instruct-q4", "llama3:Q4"),
        ("a:b.c", "a:C"),
        ("a:chat-", "a:CHAT-"),
        ("a:b:c", "a:b:C"),
        ("acme/Tiny-GGUF:Q4_K_M", "acme/Tiny-GGUF:Q4_K_M"),
        ("acme/Tiny-GGUF:UD-q4_k_xl", "acme/Tiny-GGUF:Q4_K_XL"),
    ],
)
def test_router_id_is_the_name_the_router_gives_a_section(name, expected):
    assert router_id(name) == expected


def test_the_way_back_finds_the_alias_of_a_router_id():
    names = ["tiny:chat", "other"]
    assert alias_for_router_id("tiny:CHAT", names) == "tiny:chat"
    assert alias_for_router_id("tiny:chat", names) is None
    assert alias_for_router_id("other", names) == "other"


def test_every_parameter_the_alias_sets_becomes_its_option(local_file, alias_factory, hf_home):
    local_file()
    alias_factory(alias="tiny:chat", repo=REPO, filename=FILENAME, n_ctx=256, n_threads=2, n_parallel=3,
                  n_predict=8, n_keep=4, n_seed=42, temperature=0.25, top_p=0.9, presence_penalty=-0.5,
                  frequency_penalty=1.5, max_tokens=16, stop=["</s>"], chat_template="llama3")  # fmt: skip

    preset = preset_build(template_dir=None)

    parsed = sections(preset.text)
    assert parsed["tiny:CHAT"] == {
        "model": str(snapshot_path(hf_home, REPO, FILENAME)),
        "ctx-size": "256",
        "threads": "2",
        "parallel": "3",
        "n-predict": "8",
        "keep": "4",
        "seed": "42",
        "temp": "0.25",
        "top-p": "0.9",
        "presence-penalty": "-0.5",
        "frequency-penalty": "1.5",
        "chat-template": "llama3",
    }
    assert parsed["*"] == {}
    assert parsed["default"] == {"version": "1"}
    assert "; alias tiny:chat\n" in preset.text  # the section is named as the router lists it
    assert [served.alias for served in preset.served if served.alias == "tiny:chat"] == ["tiny:chat"]


def test_unset_parameters_are_left_to_the_server(local_file, alias_factory, hf_home):
    local_file()
    alias_factory(alias="bare", repo=REPO, filename=FILENAME)

    parsed = sections(preset_build(template_dir=None).text)

    assert parsed["bare"] == {"model": str(snapshot_path(hf_home, REPO, FILENAME))}


def test_the_generated_alias_of_a_local_file_is_served_too(local_file):
    local_file()
    generated = Alias.objects.get(source=Alias.Source.MODEL)

    parsed = sections(preset_build(template_dir=None).text)

    assert router_id(generated.alias) in parsed


@pytest.mark.parametrize(
    "template", ["llama3", "llama2", "phi3", "gemma", "deepseek", "command-r", "openchat", "chatml"]
)
def test_builtin_templates_are_named_as_llama_cpp_knows_them(local_file, alias_factory, template):
    local_file()
    alias_factory(alias="t", repo=REPO, filename=FILENAME, chat_template=template)

    assert sections(preset_build(template_dir=None).text)["t"]["chat-template"] == template


def test_embedded_template_writes_nothing(local_file, alias_factory):
    local_file()
    alias_factory(alias="t", repo=REPO, filename=FILENAME, chat_template="embedded")

    section = sections(preset_build(template_dir=None).text)["t"]

    assert "chat-template" not in section and "chat-template-file" not in section


def test_tinyllama_which_llama_cpp_does_not_know_is_written_as_a_template_file(local_file, alias_factory, tmp_path):
    local_file()
    alias_factory(alias="t", repo=REPO, filename=FILENAME, chat_template="tinyllama")

    preset = preset_build(template_dir=tmp_path)

    name = "chat-template.tinyllama.jinja"
    assert sections(preset.text)["t"]["chat-template-file"] == str(tmp_path / name)
    assert "<|assistant|>" in preset.template_files[name]
    # Without a folder for the file, the alias is not served, and the page says what to set.
    assert "MODELDESK_LLAMA_PRESET_PATH" in unserved(preset_build(template_dir=None))["t"]


def _tokenizer_config(hf_home: Path, repo: str, data: object) -> None:
    cache_file(hf_home, repo, "tokenizer_config.json", content=json.dumps(data).encode())


def test_an_owner_repo_template_comes_from_its_cached_tokenizer_config(local_file, alias_factory, hf_home, tmp_path):
    local_file()
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}# not a comment; nor this"
    _tokenizer_config(hf_home, "acme/Chat-Model", {"chat_template": template, "eos_token": "</s>"})
    _tokenizer_config(hf_home, "acme/Named", {"chat_template": [{"name": "tool_use", "template": "tools"},
                                                               {"name": "default", "template": "plain"}]})  # fmt: skip
    alias_factory(alias="a", repo=REPO, filename=FILENAME, chat_template="acme/Chat-Model")
    alias_factory(alias="b", repo=REPO, filename=FILENAME, chat_template="acme/Named")
    alias_factory(alias="c", repo=REPO, filename=FILENAME, chat_template="acme/Not-Here")

    preset = preset_build(template_dir=tmp_path)

    parsed = sections(preset.text)
    assert parsed["a"]["chat-template-file"] == str(tmp_path / "chat-template.acme--Chat-Model.jinja")
    assert preset.template_files["chat-template.acme--Chat-Model.jinja"] == template
    assert preset.template_files["chat-template.acme--Named.jinja"] == "plain"
    assert "c" not in parsed
    assert "acme/Not-Here" in unserved(preset)["c"] and "tokenizer_config.json" in unserved(preset)["c"]


def test_a_split_set_is_opened_by_its_first_part(alias_factory, hf_home):
    for number in (1, 2):
        cache_file(hf_home, REPO, f"big-{number:05d}-of-00002.gguf", content=tiny_gguf(split=(number, 2), seed=number))
    for number in (1, 3):
        cache_file(
            hf_home, REPO, f"cut-{number:05d}-of-00003.gguf", content=tiny_gguf(split=(number, 3), seed=9 + number)
        )
    from modelfiles.services import modelfile_sync

    modelfile_sync()
    alias_factory(alias="big", repo=REPO, filename="big-00002-of-00002.gguf", chat_template="chatml")
    alias_factory(alias="cut", repo=REPO, filename="cut-00001-of-00003.gguf", chat_template="chatml")

    preset = preset_build(template_dir=None)

    assert sections(preset.text)["big"]["model"] == str(snapshot_path(hf_home, REPO, "big-00001-of-00002.gguf"))
    assert "Parts of this split model are missing" in unserved(preset)["cut"]


def test_aliases_that_cannot_be_served_are_listed_with_the_reason(local_file, alias_factory):
    local_file()
    alias_factory(alias="here", repo=REPO, filename=FILENAME)
    alias_factory(alias="gone", repo=REPO, filename="never-pulled.Q4_K_M.gguf")

    preset = preset_build(template_dir=None)

    assert "gone" not in sections(preset.text)
    assert unserved(preset)["gone"].startswith("The file is not in the local cache")
    assert ";   gone: The file is not in the local cache" in preset.text


def test_two_names_the_router_would_merge_serve_only_the_first(local_file, alias_factory):
    local_file()
    alias_factory(alias="tiny:chat-q4", repo=REPO, filename=FILENAME)
    alias_factory(alias="tiny:code-q4", repo=REPO, filename=FILENAME)

    preset = preset_build(template_dir=None)

    assert sections(preset.text)["tiny:Q4"]
    assert [served.alias for served in preset.served if served.router_id == "tiny:Q4"] == ["tiny:chat-q4"]
    assert "tiny:Q4" in unserved(preset)["tiny:code-q4"]


HOSTILE_NAMES = [
    "evil\n[*]\nmodel = /etc/passwd",
    "evil]\nctx-size = 1",
    "x;comment",
    "x#comment",
    "sp ace",
    "*",
    "default",
    "-starts-with-dash",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_alias_name_never_adds_a_section_or_key(local_file, name):
    local_file()
    # Straight into the table, past every validator: what an old import or a hand-edited database may hold.
    Alias.objects.create(alias=name, repo=REPO, filename=FILENAME, chat_template="chatml", n_ctx=256)

    preset = preset_build(template_dir=None)

    parsed = sections(preset.text)
    generated = {router_id(alias.alias) for alias in Alias.objects.filter(source=Alias.Source.MODEL)}
    assert set(parsed) == {"default", "*", *generated}
    assert parsed["*"] == {} and parsed["default"] == {"version": "1"}
    assert name in unserved(preset)
    assert all(set(section) == {"model"} for key, section in parsed.items() if key in generated)


@pytest.mark.parametrize("value", ["llama3\nmodel = /etc/passwd", "chatml ; x", "[x]", "../../etc"])
def test_a_hostile_template_value_is_refused_not_written(local_file, value):
    local_file()
    Alias.objects.create(alias="t", repo=REPO, filename=FILENAME, chat_template=value)

    preset = preset_build(template_dir=None)

    assert "t" not in sections(preset.text)
    assert "t" in unserved(preset)
    assert not any(line.startswith("model = /etc") for line in preset.text.splitlines())


def test_a_cache_path_the_preset_cannot_hold_is_refused(monkeypatch, tmp_path, alias_factory):
    home = tmp_path / "hf#home;x"
    monkeypatch.setenv("HF_HOME", str(home))
    cache_file(home, REPO, FILENAME, content=tiny_gguf(chat_template="x"))
    from modelfiles.services import modelfile_sync

    modelfile_sync()
    alias_factory(alias="here", repo=REPO, filename=FILENAME)

    preset = preset_build(template_dir=None)

    assert "here" not in sections(preset.text)
    assert "cannot be written in the preset" in unserved(preset)["here"]


def test_a_file_listed_but_gone_from_this_cache_is_not_served(local_file, alias_factory, hf_home):
    link = local_file()
    alias_factory(alias="here", repo=REPO, filename=FILENAME)
    link.unlink()  # gone from the disk before the next scan noticed

    preset = preset_build(template_dir=None)

    assert "not in this host's cache" in unserved(preset)["here"]


def test_the_preset_is_the_same_text_for_the_same_shelf(local_file, alias_factory):
    local_file()
    alias_factory(alias="b", repo=REPO, filename=FILENAME, temperature=0.5)
    alias_factory(alias="a", repo=REPO, filename=FILENAME)

    first = preset_build(template_dir=None)

    assert first.text == preset_build(template_dir=None).text
    assert [s.alias for s in first.served if s.alias in ("a", "b")] == ["a", "b"]
    assert {alias.alias for alias in user_aliases()} == {"a", "b"}
    assert COMMIT in first.text
