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


@functools.lru_cache(maxsize=8)
def tiny_llama_gguf(*, chat_template: str | None = None, seed: int = 0, context_length: int = 512) -> bytes:
    """A complete llama-architecture model that llama-server loads and answers with (random weights: its text is
    noise, but token counts, limits and routing are real). About 117 KB: 1 block, embedding 32, 2 heads, a
    byte-level vocabulary of <unk>, <s>, </s>, the 256 byte tokens and a few pieces."""
    embedding, heads, feed_forward, blocks = 32, 2, 64, 1
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256)), "▁", "▁a", "▁the", "e", "t"]
    # 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 6 BYTE (gguf.TokenType)
    types = [2, 3, 3, *([6] * 256), *([1] * 5)]
    scores = [0.0] * len(tokens)
    generator = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (generator.standard_normal(shape) * 0.02).astype(np.float32)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        writer = GGUFWriter(path, "llama")
        writer.add_name("tiny-llama")
        writer.add_file_type(int(LlamaFileType.ALL_F32))
        writer.add_context_length(context_length)
        writer.add_embedding_length(embedding)
        writer.add_block_count(blocks)
        writer.add_feed_forward_length(feed_forward)
        writer.add_head_count(heads)
        writer.add_head_count_kv(heads)
        writer.add_rope_dimension_count(embedding // heads)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_scores(scores)
        writer.add_unk_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        if chat_template is not None:
            writer.add_chat_template(chat_template)
        vocabulary = len(tokens)
        writer.add_tensor("token_embd.weight", weights(vocabulary, embedding))
        writer.add_tensor("output_norm.weight", np.ones(embedding, dtype=np.float32))
        writer.add_tensor("output.weight", weights(vocabulary, embedding))
        for block in range(blocks):
            prefix = f"blk.{block}"
            writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(embedding, dtype=np.float32))
            writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(embedding, dtype=np.float32))
            for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
                writer.add_tensor(f"{prefix}.{name}.weight", weights(embedding, embedding))
            writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(feed_forward, embedding))
            writer.add_tensor(f"{prefix}.ffn_up.weight", weights(feed_forward, embedding))
            writer.add_tensor(f"{prefix}.ffn_down.weight", weights(embedding, feed_forward))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()
