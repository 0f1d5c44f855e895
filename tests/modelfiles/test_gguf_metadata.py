"""GGUF metadata: read from each file's header on scan (and so after each pull), cached by blob, shown on the
model files page, the file's own page and /api/modelfiles; file states and split sets.

Every file is a real GGUF written by the `gguf` package (tests/gguf_files.py), laid out in a private cache.
"""

from __future__ import annotations

import os
import re
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from gguf import GGUFEndian, GGUFReader, GGUFWriter, LlamaFileType

from aliases.models import Alias
from modelfiles import gguf_header, services
from modelfiles.models import ModelFile
from tests.gguf_files import tiny_gguf
from tests.modelfiles import OTHER_COMMIT, cache_file

pytestmark = pytest.mark.django_db

REPO = "acme/Tiny-GGUF"
TEMPLATE = "{% for message in messages %}<|{{ message.role }}|>{{ message.content }}{% endfor %}"
API = "/api/modelfiles"


def row(filename: str) -> ModelFile:
    return ModelFile.objects.get(repo=REPO, filename=filename, present=True)


def blob_of(link: Path) -> Path:
    return link.resolve()


def test_a_scan_keeps_what_the_header_says(hf_home):
    cache_file(hf_home, REPO, "chat.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    cache_file(hf_home, REPO, "base.F16.gguf", content=tiny_gguf(file_type=LlamaFileType.MOSTLY_F16, seed=1))

    services.modelfile_sync()

    chat = row("chat.Q4_K_M.gguf")
    assert (chat.state, chat.gguf_architecture, chat.gguf_name, chat.gguf_quantization) == (
        "ok",
        "llama",
        "tiny",
        "Q4_K_M",
    )
    assert (chat.gguf_context_length, chat.gguf_embedding_length, chat.gguf_block_count) == (2048, 32, 1)
    assert (chat.gguf_parameters, chat.gguf_size_label, chat.gguf_tokenizer_model) == (128, "1K", "llama")
    assert chat.gguf_chat_template == TEMPLATE
    base = row("base.F16.gguf")
    assert (base.gguf_quantization, base.gguf_chat_template, base.split_count) == ("F16", "", None)


def test_the_api_answers_a_gguf_object_with_a_null_template_when_there_is_none(hf_home, viewer_client):
    cache_file(hf_home, REPO, "chat.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    cache_file(hf_home, REPO, "base.Q8_0.gguf", content=tiny_gguf(file_type=LlamaFileType.MOSTLY_Q8_0, seed=1))
    services.modelfile_sync()

    files = {item["filename"]: item for item in viewer_client.get(API).json()["data"]}

    chat, base = files["chat.Q4_K_M.gguf"], files["base.Q8_0.gguf"]
    assert chat["state"] == "ok" and chat["state_reason"] is None and chat["split"] is None
    gguf = chat["gguf"]
    assert {key: gguf[key] for key in ("architecture", "context_length", "parameters", "quantization")} == {
        "architecture": "llama",
        "context_length": 2048,
        "parameters": 128,
        "quantization": "Q4_K_M",
    }
    assert gguf["chat_template"] == TEMPLATE and gguf["split_count"] is None
    assert base["gguf"]["chat_template"] is None and base["gguf"]["quantization"] == "Q8_0"


def test_the_api_sorts_by_size_parameters_quantisation_and_context_length(hf_home, viewer_client):
    cache_file(hf_home, REPO, "a.Q8_0.gguf", content=tiny_gguf(context_length=4096, file_type=7, seed=1))
    cache_file(hf_home, REPO, "b.Q4_K_M.gguf", content=tiny_gguf(context_length=1024, file_type=15, seed=2))
    cache_file(hf_home, REPO, "c.gguf", content=b"not a gguf file at all, but named like one")
    services.modelfile_sync()

    def order(sort: str, sort_order: str = "asc") -> list[str]:
        response = viewer_client.get(API, {"sort": sort, "sort_order": sort_order})
        assert response.status_code == 200, response.content
        return [item["filename"] for item in response.json()["data"]]

    assert order("context_length") == ["b.Q4_K_M.gguf", "a.Q8_0.gguf", "c.gguf"]  # unknown last
    assert order("context_length", "desc") == ["a.Q8_0.gguf", "b.Q4_K_M.gguf", "c.gguf"]
    assert order("quantization", "desc")[:2] == ["a.Q8_0.gguf", "b.Q4_K_M.gguf"]
    assert order("parameters")[-1] == "c.gguf"
    assert order("size", "desc")[0] in ("a.Q8_0.gguf", "b.Q4_K_M.gguf")
    assert order("state", "desc")[0] == "c.gguf"


def test_an_unchanged_blob_is_never_read_twice(hf_home, monkeypatch):
    opened: list[str] = []
    real_read = gguf_header.read_header

    def read_header(path):
        opened.append(str(path))
        return real_read(path)

    monkeypatch.setattr(gguf_header, "read_header", read_header)
    link = cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf", content=tiny_gguf(context_length=2048))
    services.modelfile_sync()
    assert opened == [str(link)]
    opened.clear()
    # Same name, same size, other bytes: were it read again it would be unreadable.
    blob = blob_of(link)
    blob.write_bytes(b"\0" * blob.stat().st_size)

    services.modelfile_sync()
    assert opened == [] and row("tiny.Q4_K_M.gguf").state == "ok"

    # The same blob in a second snapshot is copied from the first row, not opened.
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf", commit=OTHER_COMMIT, content=tiny_gguf(context_length=2048))
    other = hf_home / "hub" / "models--acme--Tiny-GGUF" / "blobs" / blob.name
    assert other == blob
    blob.write_bytes(b"\0" * blob.stat().st_size)
    services.modelfile_sync()
    assert opened == []
    copies = ModelFile.objects.filter(repo=REPO, filename="tiny.Q4_K_M.gguf", present=True)
    assert sorted(copies.values_list("state", "gguf_context_length")) == [("ok", 2048), ("ok", 2048)]


def test_a_new_blob_is_read_again(hf_home):
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf", content=tiny_gguf(context_length=2048))
    services.modelfile_sync()
    cache_file(hf_home, REPO, "tiny.Q4_K_M.gguf", commit=OTHER_COMMIT, content=tiny_gguf(context_length=8192))

    services.modelfile_sync()

    assert ModelFile.objects.get(snapshot=OTHER_COMMIT).gguf_context_length == 8192


def test_a_truncated_file_is_corrupt_and_gets_no_generated_alias(hf_home, viewer_client):
    cache_file(hf_home, REPO, "cut.Q4_K_M.gguf", content=tiny_gguf()[:-100])

    services.modelfile_sync()

    cut = row("cut.Q4_K_M.gguf")
    assert cut.state == "corrupt" and cut.gguf_error.startswith("truncated")
    assert not Alias.objects.filter(source="model").exists()
    [item] = viewer_client.get(API).json()["data"]
    assert item["state"] == "corrupt" and "truncated" in item["state_reason"]
    assert item["gguf"]["architecture"] == "llama"  # the header itself was readable


def test_a_file_whose_header_cannot_be_read_is_unreadable(hf_home, viewer_client):
    cache_file(hf_home, REPO, "junk.Q4_K_M.gguf", content=b"GGUF\x03\x00\x00\x00 and then nothing sensible")
    cache_file(hf_home, REPO, "other.Q4_K_M.gguf", content=b"PK\x03\x04 a zip file")

    services.modelfile_sync()

    assert row("junk.Q4_K_M.gguf").state == "unreadable"
    assert "damaged" in row("junk.Q4_K_M.gguf").gguf_error
    assert row("other.Q4_K_M.gguf").gguf_error == "not a GGUF file: it does not start with GGUF"
    assert not Alias.objects.filter(source="model").exists()
    assert {item["state"]: item["gguf"] for item in viewer_client.get(API).json()["data"]} == {"unreadable": None}


def split_set(hf_home, parts: tuple[int, ...], count: int = 3, prefix: str = "big.Q4_K_M") -> None:
    for number in parts:
        cache_file(
            hf_home,
            REPO,
            f"{prefix}-{number:05d}-of-{count:05d}.gguf",
            content=tiny_gguf(split=(number, count), seed=number),
        )


def test_a_complete_split_set_is_one_model_aliased_at_its_first_part(hf_home, viewer_client):
    split_set(hf_home, (1, 2, 3))

    services.modelfile_sync()

    first = row("big.Q4_K_M-00001-of-00003.gguf")
    assert (first.state, first.split_no, first.split_count, first.split_present) == ("ok", 1, 3, 3)
    assert first.split_total_size == 3 * len(tiny_gguf(split=(1, 3), seed=1))
    [alias] = Alias.objects.filter(source="model")
    assert (alias.alias, alias.filename) == (f"{REPO}:Q4_K_M", "big.Q4_K_M-00001-of-00003.gguf")
    items = {item["filename"]: item for item in viewer_client.get(API).json()["data"]}
    assert items["big.Q4_K_M-00001-of-00003.gguf"]["split"] == {
        "parts": 3, "present": 3, "total_size": first.split_total_size, "complete": True
    }  # fmt: skip
    assert items["big.Q4_K_M-00002-of-00003.gguf"]["gguf"]["split_no"] == 2


def test_an_incomplete_split_set_is_flagged_and_never_aliased_until_it_is_complete(hf_home, viewer_client):
    split_set(hf_home, (1, 3))

    services.modelfile_sync()

    first = row("big.Q4_K_M-00001-of-00003.gguf")
    assert (first.state, first.split_present) == ("incomplete", 2)
    assert not Alias.objects.filter(source="model").exists()
    item = next(i for i in viewer_client.get(API).json()["data"] if i["filename"] == first.filename)
    assert item["state"] == "incomplete" and item["state_reason"].startswith("Only 2 of the 3 parts")

    split_set(hf_home, (2,))
    services.modelfile_sync()

    assert row("big.Q4_K_M-00001-of-00003.gguf").state == "ok"
    assert Alias.objects.get(source="model").filename == "big.Q4_K_M-00001-of-00003.gguf"


def test_a_damaged_part_makes_the_whole_set_incomplete(hf_home):
    split_set(hf_home, (1, 2))
    cache_file(hf_home, REPO, "big.Q4_K_M-00003-of-00003.gguf", content=tiny_gguf(split=(3, 3), seed=3)[:-50])

    services.modelfile_sync()

    assert row("big.Q4_K_M-00003-of-00003.gguf").state == "corrupt"
    assert row("big.Q4_K_M-00001-of-00003.gguf").state == "incomplete"
    assert not Alias.objects.filter(source="model").exists()


def sparse_gguf(path: Path, tensor_bytes: int) -> None:
    """A GGUF header describing `tensor_bytes` of F32 tensors, then a hole of that size (no blocks on disk)."""
    writer = GGUFWriter(path, "llama")
    writer.add_context_length(131072)
    writer.add_token_list([f"token{i}" for i in range(32_000)])  # a vocabulary the reader must step over
    per_tensor = 2**30
    for number in range(tensor_bytes // per_tensor):
        writer.add_tensor_info(f"blk.{number}.weight", (2**14, 2**14), np.dtype(np.float32), per_tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    os.truncate(path, path.stat().st_size + tensor_bytes + 4096)


def test_the_header_of_a_50_gb_file_costs_milliseconds_and_never_touches_its_tensors(tmp_path):
    path = tmp_path / "huge.gguf"
    sparse_gguf(path, 50 * 2**30)
    assert path.stat().st_size > 50 * 2**30 and path.stat().st_blocks * 512 < 10 * 2**20  # a hole, not data

    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    header = gguf_header.read_header(path)
    seconds = time.perf_counter() - started
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before

    assert header.state == "ok" and header.parameters == 50 * 2**28 and header.context_length == 131072
    # Touching the tensor data would fault in pages by the million; the header is a few hundred KB.
    assert faults < 2000, faults
    assert seconds < 0.5, seconds


def test_the_file_page_shows_the_header_and_the_split_parts(hf_home, client_for, viewer):
    cache_file(hf_home, REPO, "chat.Q4_K_M.gguf", content=tiny_gguf(context_length=2048, chat_template=TEMPLATE))
    split_set(hf_home, (1, 3))
    services.modelfile_sync()
    client = client_for(viewer)

    page = client.get(reverse("modelfiles:detail", args=[row("chat.Q4_K_M.gguf").pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="file-state">ok<' in html and 'data-field="context_length">2,048<' in html
    assert "Embedded chat template" in html and "&lt;|{{ message.role }}|&gt;" in html

    split = client.get(reverse("modelfiles:detail", args=[row("big.Q4_K_M-00001-of-00003.gguf").pk])).content.decode()
    assert 'data-testid="file-state">incomplete<' in split and "Only 2 of the 3 parts" in split
    assert '<tr data-part="2">' in split and ">missing<" in split
    assert client.get(reverse("modelfiles:detail", args=[999999])).status_code == 404


def test_the_files_page_shows_quantisation_parameters_context_and_state(hf_home, client_for, viewer):
    cache_file(hf_home, REPO, "chat.Q4_K_M.gguf", content=tiny_gguf(context_length=2048))
    cache_file(hf_home, REPO, "cut.Q4_K_M.gguf", content=tiny_gguf(seed=5)[:-100])
    split_set(hf_home, (1, 2, 3))
    services.modelfile_sync()

    html = client_for(viewer).get(reverse("modelfiles:list"), {"sort": "-gguf_context_length"}).content.decode()

    assert ">2,048<" in html and ">Q4_K_M<" in html and 'data-state="corrupt"' in html
    assert "part 1 of 3" in html and "in all" in html
    assert reverse("modelfiles:detail", args=[row("chat.Q4_K_M.gguf").pk]) in html


def reference_header(path: Path) -> dict:
    """What the `gguf` package's own GGUFReader says about the fields read_header keeps."""
    reader = GGUFReader(path)

    def value(key: str):
        field = reader.get_field(key)
        return None if field is None else field.contents()

    architecture = value("general.architecture")
    return {
        "architecture": architecture,
        "name": value("general.name"),
        "context_length": value(f"{architecture}.context_length"),
        "embedding_length": value(f"{architecture}.embedding_length"),
        "block_count": value(f"{architecture}.block_count"),
        "tokenizer_model": value("tokenizer.ggml.model"),
        "chat_template": value("tokenizer.chat_template"),
        "parameters": sum(int(tensor.n_elements) for tensor in reader.tensors),
        "tensor_count": len(reader.tensors),
        "split": (value("split.no"), value("split.count")),
        "data_end": max(int(tensor.data_offset) + int(tensor.n_bytes) for tensor in reader.tensors),
    }


@pytest.mark.parametrize("endian", [GGUFEndian.LITTLE, GGUFEndian.BIG])
def test_the_header_walk_agrees_with_the_gguf_packages_reader(tmp_path, endian):
    # A vocabulary well past the first read (64 KiB), a template and split keys after it, arrays of every kind.
    path = tmp_path / "model.gguf"
    writer = GGUFWriter(path, "qwen2", endianess=endian)
    writer.add_name("agreement test")
    writer.add_context_length(32768)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok-{i}-{'x' * (i % 13)}" for i in range(20_000)])
    writer.add_token_scores([float(i) for i in range(20_000)])
    writer.add_array("test.nested", [[1, 2], [3, 4, 5]])
    writer.add_chat_template(TEMPLATE)
    writer.add_uint16("split.no", 1)
    writer.add_uint16("split.count", 4)
    writer.add_uint32("general.alignment", 64)
    for number in range(3):
        writer.add_tensor(f"blk.{number}.weight", np.full((8, 16 + number), number, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert path.stat().st_size > 4 * gguf_header.READ_CHUNK

    header = gguf_header.read_header(path)
    expected = reference_header(path)

    assert header.state == "ok" and header.error == ""
    assert (header.architecture, header.name, header.context_length) == ("qwen2", "agreement test", 32768)
    assert {
        "architecture": header.architecture,
        "name": header.name,
        "context_length": header.context_length,
        "embedding_length": header.embedding_length,
        "block_count": header.block_count,
        "tokenizer_model": header.tokenizer_model,
        "chat_template": header.chat_template,
        "parameters": header.parameters,
        "tensor_count": header.tensor_count,
        "split": (header.split_no - 1, header.split_count),
    } == {key: value for key, value in expected.items() if key != "data_end"}
    # One byte short of where the reader says the last tensor ends is truncated; the whole file is not.
    os.truncate(path, expected["data_end"] - 1)
    assert gguf_header.read_header(path).state == "corrupt"
    os.truncate(path, expected["data_end"])
    assert gguf_header.read_header(path).state == "ok"


@pytest.mark.parametrize("cut", [6, 16, 30, 200, -1])
def test_a_header_cut_anywhere_is_reported_not_raised(tmp_path, cut):
    path = tmp_path / "cut.gguf"
    content = tiny_gguf(chat_template=TEMPLATE)
    assert len(content) > 300
    path.write_bytes(content[:cut])

    header = gguf_header.read_header(path)

    assert header.state in ("unreadable", "corrupt") and header.error


def test_only_a_file_that_can_load_offers_create_alias(hf_home, client_for, editor):
    split_set(hf_home, (1, 2, 3))
    cache_file(hf_home, REPO, "cut.Q6_K.gguf", content=tiny_gguf(seed=30)[:-64])
    services.modelfile_sync()

    page = client_for(editor).get("/files/?per_page=100").content.decode()

    offered = re.findall(r"/aliases/-/new/\?repo=[^&]+&amp;filename=([^&]+)&amp;", page)
    assert offered == ["big.Q4_K_M-00001-of-00003.gguf"]  # not parts 2 and 3, not the truncated file
