"""Tiny real GGUF files for tests, written by the `gguf` package's GGUFWriter (a few KB each)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType


@functools.lru_cache(maxsize=64)
def tiny_gguf(
    *,
    context_length: int = 512,
    chat_template: str | None = None,
    name: str = "tiny",
    split: tuple[int, int] | None = None,
    file_type: int = LlamaFileType.MOSTLY_Q4_K_M,
    seed: int = 0,
) -> bytes:
    """A llama-architecture GGUF with one small F32 tensor. `split=(number, count)` (1-based) writes the header
    keys of one part of a split set; `seed` changes the tensor so two files get different blobs."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        writer = GGUFWriter(path, "llama")
        writer.add_name(name)
        writer.add_size_label("1K")
        writer.add_file_type(int(file_type))
        writer.add_context_length(context_length)
        writer.add_embedding_length(32)
        writer.add_block_count(1)
        writer.add_tokenizer_model("llama")
        if chat_template is not None:
            writer.add_chat_template(chat_template)
        if split is not None:
            writer.add_uint16("split.no", split[0] - 1)
            writer.add_uint16("split.count", split[1])
        writer.add_tensor("token_embd.weight", np.full((4, 32), seed, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()
