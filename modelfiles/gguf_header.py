"""What a GGUF file says about itself, read from its header; no database here.

The header is walked with `struct` over a buffered read of the file's start, by the format as the `gguf` package
defines it (its value types, quantisation block sizes, file types and alignment). The package's own
`GGUFReader` memory-maps the file through numpy and builds a view per field: about 0.8 ms for a tiny file, which
made the first scan of a 10,000-file cache take seconds of header reading alone. Here a file costs one `open`,
one or a few `read`s of what the header holds (a large vocabulary is most of it) and a loop over the key/value
pairs; the tensor data (nearly all of a 50 GB file) is never read. The tensor descriptions are kept only to count
the weights and to find where the last tensor's bytes end, so a truncated file is caught by comparing that with
the file's size. tests/modelfiles/test_gguf_metadata.py checks the answers against `GGUFReader`'s.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import asdict, dataclass
from typing import Any

from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFValueType, LlamaFileType

# llama.cpp's naming of the parts of a split model: it opens part 1 and finds the others by this pattern.
SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# A chat template longer than this is kept cut (the page and the API show it; nothing renders it here).
CHAT_TEMPLATE_MAX = 65_536
# What the first read takes (a small model's whole header); a larger one is read on, doubling each time. Reading
# more at first costs more than it saves: 64 KiB took 40-110 µs a file here, 16 KiB 16 µs.
READ_CHUNK = 16 * 1024
SUPPORTED_VERSIONS = (2, 3)


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

# struct formats of the scalar value types (without the byte order).
_SCALARS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_SCALAR_SIZES = {int(kind): struct.calcsize("<" + code) for kind, code in _SCALARS.items()}
_SCALAR_CODES = {int(kind): code for kind, code in _SCALARS.items()}
_STRING, _ARRAY = int(GGUFValueType.STRING), int(GGUFValueType.ARRAY)
# Keys whose values are kept; every other value is stepped over without being decoded.
_KEPT_SUFFIXES = (b".context_length", b".embedding_length", b".block_count")
_KEPT_KEYS = frozenset(
    {
        b"general.architecture",
        b"general.name",
        b"general.size_label",
        b"general.file_type",
        b"general.alignment",
        b"tokenizer.ggml.model",
        b"tokenizer.chat_template",
        b"split.no",
        b"split.count",
    }
)


class DamagedHeader(ValueError):
    """The bytes are not the GGUF header they claim to be."""


class _HeaderBuffer:
    """The start of the file, read on demand: `need(end)` makes sure bytes [0, end) are in `data`."""

    def __init__(self, handle, size: int) -> None:
        self.handle = handle
        self.size = size
        self.data = handle.read(min(READ_CHUNK, size))

    def need(self, end: int) -> None:
        if end <= len(self.data):
            return
        if end > self.size:
            raise DamagedHeader("the header runs past the end of the file")
        more = self.handle.read(max(end - len(self.data), len(self.data), READ_CHUNK))
        self.data += more
        if end > len(self.data):
            raise DamagedHeader("the file ended while its header was read")


class _HeaderWalk:
    """One pass over the key/value pairs and the tensor descriptions."""

    def __init__(self, buffer: _HeaderBuffer, order: str) -> None:
        self.buffer = buffer
        self.order = order
        self.u32 = struct.Struct(order + "I")
        self.u64 = struct.Struct(order + "Q")
        self.offset = 0

    def _unpack(self, packer: struct.Struct) -> int:
        end = self.offset + packer.size
        self.buffer.need(end)
        (value,) = packer.unpack_from(self.buffer.data, self.offset)
        self.offset = end
        return value

    def _string(self, keep: bool) -> str | None:
        length = self._unpack(self.u64)
        end = self.offset + length
        self.buffer.need(end)
        text = None
        if keep:
            text = self.buffer.data[self.offset : end].decode("utf-8", errors="replace")
        self.offset = end
        return text

    def _value(self, kind: int, keep: bool) -> Any:
        if kind == _STRING:
            return self._string(keep)
        if kind == _ARRAY:
            self._skip_array()
            return None
        code = _SCALAR_CODES.get(kind)
        if code is None:
            raise DamagedHeader(f"unknown value type {kind}")
        end = self.offset + _SCALAR_SIZES[kind]
        self.buffer.need(end)
        value = struct.unpack_from(self.order + code, self.buffer.data, self.offset)[0] if keep else None
        self.offset = end
        return value

    def _skip_array(self) -> None:
        kind = self._unpack(self.u32)
        count = self._unpack(self.u64)
        if kind == _STRING:
            # The vocabulary: each item is its length and its bytes, so the walk steps item by item.
            # The hottest loop of a scan (150,000 items in a current model): locals only, one bounds check.
            unpack, data, offset = self.u64.unpack_from, self.buffer.data, self.offset
            limit = len(data) - 8
            for _ in range(count):
                if offset > limit:
                    self.offset = offset
                    self.buffer.need(offset + 8)
                    data = self.buffer.data
                    limit = len(data) - 8
                offset += 8 + unpack(data, offset)[0]
            self.offset = offset
            self.buffer.need(offset)
        elif kind == _ARRAY:
            for _ in range(count):
                self._skip_array()
        else:
            size = _SCALAR_SIZES.get(kind)
            if size is None:
                raise DamagedHeader(f"unknown array item type {kind}")
            self.offset += count * size
            self.buffer.need(self.offset)

    def fields(self, count: int) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        u64, u32 = self.u64.unpack_from, self.u32.unpack_from
        order, buffer = self.order, self.buffer
        for _ in range(count):
            # The hot path, inlined: a key (its length, its bytes), the value's type, then a scalar or a string.
            offset = self.offset
            data = buffer.data
            if offset + 8 > len(data):
                buffer.need(offset + 8)
                data = buffer.data
            end = offset + 8 + u64(data, offset)[0]
            if end + 4 > len(data):
                buffer.need(end + 4)
                data = buffer.data
            key = data[offset + 8 : end]  # compared as bytes: only the kept keys are decoded
            kind = u32(data, end)[0]
            self.offset = end + 4
            keep = key in _KEPT_KEYS or key.endswith(_KEPT_SUFFIXES)
            size = _SCALAR_SIZES.get(kind)
            if size is not None:
                end = self.offset + size
                if end > len(data):
                    buffer.need(end)
                    data = buffer.data
                if keep:
                    kept[key.decode("utf-8", errors="replace")] = struct.unpack_from(
                        order + _SCALAR_CODES[kind], data, self.offset
                    )[0]
                self.offset = end
                continue
            value = self._value(kind, keep)
            if keep and value is not None:
                kept[key.decode("utf-8", errors="replace")] = value
        return kept

    def tensors(self, count: int) -> list[tuple[int, int, int]]:
        """(elements, quantisation type, data offset) of each tensor."""
        infos = []
        for _ in range(count):
            self._string(keep=False)
            dimensions = self._unpack(self.u32)
            elements = 1
            for _ in range(dimensions):
                elements *= self._unpack(self.u64)
            kind = self._unpack(self.u32)
            offset = self._unpack(self.u64)
            infos.append((elements, kind, offset))
        return infos


def _order_and_version(data: bytes) -> tuple[str, int]:
    if len(data) < 24:
        raise DamagedHeader("the file is shorter than a GGUF header")
    (version,) = struct.unpack_from("<I", data, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order, as GGUFReader reads it
        order = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version not in SUPPORTED_VERSIONS:
        raise DamagedHeader(f"GGUF version {version} is not supported")
    return order, version


def _parse(buffer: _HeaderBuffer) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """The kept key/value pairs and (elements, end of its data) for each tensor."""
    order, _version = _order_and_version(buffer.data)
    walk = _HeaderWalk(buffer, order)
    walk.offset = 8
    tensor_count = walk._unpack(walk.u64)
    kv_count = walk._unpack(walk.u64)
    if tensor_count > buffer.size or kv_count > buffer.size:
        raise DamagedHeader("its counts are larger than the file")
    fields = walk.fields(kv_count)
    infos = walk.tensors(tensor_count)
    alignment = fields.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise DamagedHeader("its alignment is not a power of two")
    data_start = -(-walk.offset // alignment) * alignment
    tensors = []
    for elements, kind, offset in infos:
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise DamagedHeader(f"unknown tensor type {kind}") from None
        tensors.append((elements, data_start + offset + elements * type_size // block_size))
    return fields, tensors


def _text(fields: dict[str, Any], key: str, limit: int = 255) -> str:
    value = fields.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _number(fields: dict[str, Any], key: str) -> int | None:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
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
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            buffer = _HeaderBuffer(handle, size)
            if buffer.data[: len(GGUF_MAGIC)] != GGUF_MAGIC:
                return GgufHeader(state=HeaderState.UNREADABLE, error="not a GGUF file: it does not start with GGUF")
            fields, tensors = _parse(buffer)
    except OSError as exc:
        return GgufHeader(state=HeaderState.UNREADABLE, error=f"cannot be opened ({exc.strerror or exc})")
    except (DamagedHeader, struct.error, UnicodeDecodeError, OverflowError) as exc:
        detail = str(exc)[:200] or type(exc).__name__
        return GgufHeader(state=HeaderState.UNREADABLE, error=f"the GGUF header is damaged ({detail})")
    return _header_of(fields, tensors, size)


def _header_of(fields: dict[str, Any], tensors: list[tuple[int, int]], size: int) -> GgufHeader:
    architecture = _text(fields, "general.architecture", 64)
    template = fields.get("tokenizer.chat_template")
    split_count = _number(fields, "split.count")
    split_no = _number(fields, "split.no")
    data_end = max((end for _elements, end in tensors), default=0)
    state, error = HeaderState.OK, ""
    if data_end > size:
        state = HeaderState.CORRUPT
        error = f"truncated: its tensors need {data_end:,} bytes, the file has {size:,}"
    return GgufHeader(
        state=state,
        error=error,
        architecture=architecture,
        name=_text(fields, "general.name"),
        parameters=sum(elements for elements, _end in tensors) or None,
        size_label=_text(fields, "general.size_label", 32),
        quantization=quantization_name(_number(fields, "general.file_type")),
        context_length=_number(fields, f"{architecture}.context_length") if architecture else None,
        embedding_length=_number(fields, f"{architecture}.embedding_length") if architecture else None,
        block_count=_number(fields, f"{architecture}.block_count") if architecture else None,
        tokenizer_model=_text(fields, "tokenizer.ggml.model", 64),
        chat_template=template[:CHAT_TEMPLATE_MAX] if isinstance(template, str) and template.strip() else None,
        split_no=None if split_no is None or split_count is None else split_no + 1,
        split_count=split_count if split_count and split_count > 1 else None,
        tensor_count=len(tensors),
    )
