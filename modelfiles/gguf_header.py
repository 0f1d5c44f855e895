"""What a GGUF file says about itself, read from its header with the `gguf` package; no database here.

`GGUFReader` memory-maps the file and walks the key/value pairs and the tensor descriptions at its start. The
tensor data (nearly all of a 50 GB file) is never read: the subclass below stops the reader from building its
per-tensor array views and only notes where each tensor's bytes would end, so a truncated file is caught by
comparing that with the file's size instead of touching the pages. Reading the header costs what the header
holds (a large vocabulary is most of it), not what the file weighs.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, LlamaFileType

# llama.cpp's naming of the parts of a split model: it opens part 1 and finds the others by this pattern.
SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# A chat template longer than this is kept cut (the page and the API show it; nothing renders it here).
CHAT_TEMPLATE_MAX = 65_536


class HeaderState:
    OK = "ok"
    CORRUPT = "corrupt"  # the header reads, but the file is shorter than the tensors it describes
    UNREADABLE = "unreadable"  # no GGUF header could be read (not GGUF, damaged, or the file cannot be opened)


@dataclass(frozen=True)
class SplitName:
    prefix: str
    number: int
    count: int

    def part(self, number: int) -> str:
        return f"{self.prefix}-{number:05d}-of-{self.count:05d}.gguf"


def split_name(filename: str) -> SplitName | None:
    """`model-00002-of-00003.gguf` → (model, 2, 3); None for a file that is not one part of a split set."""
    match = SPLIT_RE.match(filename)
    if match is None:
        return None
    number, count = int(match["no"]), int(match["count"])
    if count < 2 or not 1 <= number <= count:
        return None
    return SplitName(prefix=match["prefix"], number=number, count=count)


@dataclass(frozen=True)
class GgufHeader:
    state: str
    error: str = ""
    architecture: str = ""
    name: str = ""
    parameters: int | None = None
    size_label: str = ""
    quantization: str = ""
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    tokenizer_model: str = ""
    chat_template: str | None = None
    split_no: int | None = None  # 1-based, as in the file name (the header's split.no counts from 0)
    split_count: int | None = None
    tensor_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


GGUF_MAGIC = b"GGUF"


class _HeaderOnlyReader(GGUFReader):
    """GGUFReader that skips what the metadata does not need.

    - Arrays (the vocabulary: 150,000 strings in a current model) are stepped over instead of being turned into
      one numpy view per item, which costs seconds per file; none of the keys kept here is an array.
    - No tensor array views: their shapes are checked against the data, which a truncated file fails with a bare
      "cannot reshape"; the tensor descriptions are kept and compared with the file's size instead.

    Both hooks are the reader's own internal methods (the package says their API may change): the dependency is
    pinned below 1.0 and tests/modelfiles/test_gguf_metadata.py covers them.
    """

    tensor_infos: list[tuple[int, int]]  # (elements, end offset of its data)

    def _get_field_parts(self, orig_offs: int, raw_type: int) -> tuple[int, list, list[int], list[GGUFValueType]]:
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        length = self._get(orig_offs + 4, np.uint64)
        item_type = GGUFValueType(int(raw_itype[0]))
        count = int(length[0])
        offs = orig_offs + 12
        if item_type == GGUFValueType.STRING:
            order = "<" if (self.byte_order == "I") == (sys.byteorder == "little") else ">"
            buffer = memoryview(self.data)
            for _ in range(count):
                (text_length,) = struct.unpack_from(order + "Q", buffer, offs)
                offs += 8 + text_length
                if offs > len(buffer):
                    break
        elif item_type in self.gguf_scalar_to_np:
            offs += count * np.dtype(self.gguf_scalar_to_np[item_type]).itemsize
        else:
            return super()._get_field_parts(orig_offs, raw_type)  # arrays of arrays: rare, small
        if offs > len(self.data):
            raise ValueError("an array runs past the end of the file")
        return offs - orig_offs, [raw_itype, length], [], [GGUFValueType.ARRAY, item_type]

    def _build_tensors(self, start_offs: int, fields: list) -> None:
        infos = []
        for field in fields:
            _name_len, _name, _n_dims, dims, raw_dtype, offset_tensor = field.parts
            elements = int(np.prod(dims, dtype=np.uint64)) if len(dims) else 1
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_dtype[0]))]
            infos.append((elements, int(start_offs + int(offset_tensor[0]) + elements * type_size // block_size)))
        self.tensor_infos = infos
        self.tensors = []


def _value(reader: GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    if field is None or not field.types:
        return None
    if field.types[0] == GGUFValueType.ARRAY:
        return None  # none of the keys read here is an array; a file that says otherwise gets nothing
    return field.contents()


def _text(reader: GGUFReader, key: str, limit: int = 255) -> str:
    value = _value(reader, key)
    return value[:limit] if isinstance(value, str) else ""


def _number(reader: GGUFReader, key: str) -> int | None:
    value = _value(reader, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = int(value)
    return value if 0 <= value < 2**63 else None


def quantization_name(file_type: int | None) -> str:
    """`general.file_type` as people write it: 15 → Q4_K_M, 0 → F32."""
    if file_type is None:
        return ""
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def read_header(path: str | os.PathLike[str]) -> GgufHeader:
    """The metadata of one GGUF file; never raises for what is in the file, only reports it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
        if magic != GGUF_MAGIC:
            return GgufHeader(state=HeaderState.UNREADABLE, error="not a GGUF file: it does not start with GGUF")
        reader = _HeaderOnlyReader(path)
    except OSError as exc:
        return GgufHeader(state=HeaderState.UNREADABLE, error=f"cannot be opened ({exc.strerror or exc})")
    except Exception as exc:  # the reader raises ValueError, KeyError, IndexError, OverflowError... on bad bytes
        detail = str(exc)[:200] or type(exc).__name__
        return GgufHeader(state=HeaderState.UNREADABLE, error=f"the GGUF header is damaged ({detail})")
    # Nothing keeps a view of the mapping: it is unmapped when `reader` goes (reference counting), not later.
    return _header_of(reader, size)


def _header_of(reader: _HeaderOnlyReader, size: int) -> GgufHeader:
    architecture = _text(reader, "general.architecture", 64)
    template = _value(reader, "tokenizer.chat_template")
    split_count = _number(reader, "split.count")
    split_no = _number(reader, "split.no")
    data_end = max((end for _elements, end in reader.tensor_infos), default=0)
    state, error = HeaderState.OK, ""
    if data_end > size:
        state = HeaderState.CORRUPT
        error = f"truncated: its tensors need {data_end:,} bytes, the file has {size:,}"
    return GgufHeader(
        state=state,
        error=error,
        architecture=architecture,
        name=_text(reader, "general.name"),
        parameters=sum(elements for elements, _end in reader.tensor_infos) or None,
        size_label=_text(reader, "general.size_label", 32),
        quantization=quantization_name(_number(reader, "general.file_type")),
        context_length=_number(reader, f"{architecture}.context_length") if architecture else None,
        embedding_length=_number(reader, f"{architecture}.embedding_length") if architecture else None,
        block_count=_number(reader, f"{architecture}.block_count") if architecture else None,
        tokenizer_model=_text(reader, "tokenizer.ggml.model", 64),
        chat_template=template[:CHAT_TEMPLATE_MAX] if isinstance(template, str) and template.strip() else None,
        split_no=None if split_no is None or split_count is None else split_no + 1,
        split_count=split_count if split_count and split_count > 1 else None,
        tensor_count=len(reader.tensor_infos),
    )
