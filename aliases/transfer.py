"""Alias import and export formats, and the import plan (what each row would do), with no request in sight.

Formats (FORMATS):
- ``bodhi-yaml``: BodhiApp's alias YAML, one alias mapping per file or a list of them (its ``models.yaml``).
  ``request_params`` and ``context_params`` are nested mappings; ``chat_template`` is left out when it is
  ``embedded`` (BodhiApp has no such value: a missing template means the file's own).
- ``json``: a list of aliases in the API's shape (``GET /api/models`` items); the list envelope
  ``{"data": [...]}`` is accepted too. Read-only keys (source, version, timestamps, file_*) are ignored on import.
- ``csv``: a header row and one column per field (CSV_COLUMNS). Empty cell = not set. ``stop`` is a JSON list in
  one cell (``["</s>", "\\n\\n"]``). On export, text cells starting with = + - @ (or tab/CR) get a leading ``'``
  so spreadsheets do not run them as formulas; on import that quote is removed again.

Parsing never trusts the input: it must be UTF-8, YAML is read with a safe loader that refuses anchors/aliases
(no entity expansion) and deep nesting, and every value then goes through the model's own validators
(``plan_import``), which also offer the closest valid value for a refused one where there is one.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from collections import namedtuple
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from aliases.file_status import AliasFile, alias_file, alias_file_problems, alias_files
from aliases.models import BASIC_FIELDS, CONTEXT_PARAMS, EDITABLE_FIELDS, REQUEST_PARAMS, Alias
from aliases.validators import (
    ALIAS_NAME_MAX,
    ALIAS_NAME_RE,
    BUILTIN_CHAT_TEMPLATES,
    EMBEDDED_CHAT_TEMPLATE,
    STOP_ALLOWED_CONTROLS,
    STOP_MAX_COUNT,
    STOP_MAX_LENGTH,
    USER_MAX,
    Bounded,
    control_problem,
)

FORMATS = ("bodhi-yaml", "json", "csv")
CONTENT_TYPES = {"bodhi-yaml": "application/yaml", "json": "application/json", "csv": "text/csv"}
EXTENSIONS = {"bodhi-yaml": "yaml", "json": "json", "csv": "csv"}
CONFLICT_CHOICES = ("skip", "overwrite", "rename")
CSV_COLUMNS = (*BASIC_FIELDS, "source", *REQUEST_PARAMS, *CONTEXT_PARAMS)
# Keys of the API's shape that describe the stored row, not a value to set.
READ_ONLY_KEYS = frozenset({"source", "version", "created_at", "updated_at", "file_status", "file_progress",
                            "file_hosts"})  # fmt: skip
# BodhiApp's templates that ours name differently, and what ours calls them.
BODHI_TEMPLATES = {"llama2-legacy": "llama2"}
MAX_ROWS = 100_000
YAML_MAX_DEPTH = 16
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TransferError(Exception):
    """The file as a whole cannot be read (not UTF-8, not YAML/JSON/CSV, not a list of aliases)."""


# --- reading ---------------------------------------------------------------------------------------------------


def format_for_filename(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith((".yaml", ".yml")):
        return "bodhi-yaml"
    if lowered.endswith(".json"):
        return "json"
    if lowered.endswith(".csv"):
        return "csv"
    return None


def _text(content: bytes | str) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TransferError(
            f"The file is not UTF-8 text (byte 0x{content[exc.start]:02x} at position {exc.start}). Save it as UTF-8."
        ) from exc


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML was built with it: ~10x faster


def _check_yaml_events(text: str) -> None:
    """Refuse anchors/aliases (a few lines can expand to gigabytes) and deep nesting (which exhausts the stack),
    from the parser's event stream, before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise TransferError("YAML anchors and aliases (&name / *name) are not accepted in an alias file.")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > YAML_MAX_DEPTH:
                raise TransferError(f"The YAML is nested more than {YAML_MAX_DEPTH} levels deep.")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _NotPlain(Exception):
    """The YAML uses more than untagged mappings, lists and scalars (or is broken): read it the careful way."""


# The scalar types the safe loader gives an untagged plain scalar; any other tag it resolves (merge keys `<<`,
# the value key `=`) takes the careful way, which accepts or refuses it exactly as yaml.load does.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp", "str")}


def _plain_yaml(text: str) -> Any:
    """The data yaml.load(text, Loader=_LOADER) gives, built straight from libyaml's event stream in one pass.

    PyYAML composes a node tree and then constructs it in Python, resolving every scalar's type by regular
    expressions, which is most of the time a 10,000-alias models.yaml takes (3.6 s). Here each plain scalar is
    resolved and constructed by the same loader's resolver and constructors, once per distinct text (a file repeats
    its keys, repos and numbers on every alias). Anything beyond untagged mappings, lists and scalars (anchors,
    aliases, tags, merge keys, unhashable keys, several documents, nesting deeper than YAML_MAX_DEPTH, a syntax
    error) raises _NotPlain: the caller then reads the file the careful way, which accepts or refuses it as before.
    """
    loader = _LOADER(text)
    try:
        resolve, constructors = loader.resolve, loader.yaml_constructors
        plain: dict[str, Any] = {}
        # Each open collection: [the list or dict, the key waiting for its value, whether a key is waiting].
        stack: list[list[Any]] = []
        result: Any = None
        documents = 0
        while True:
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is not None or event.tag is not None:
                    raise _NotPlain
                text_value = event.value
                if event.implicit[0]:
                    value = plain.get(text_value, _NotPlain)
                    if value is _NotPlain:
                        tag = resolve(yaml.ScalarNode, text_value, (True, False))
                        if tag not in _PLAIN_TAGS:
                            raise _NotPlain
                        value = constructors[tag](loader, yaml.ScalarNode(tag, text_value))
                        plain[text_value] = value  # null, bool, int, float, datetime, str: immutable, so shared
                else:
                    value = text_value  # quoted: always a string
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.anchor is not None or event.tag is not None or len(stack) >= YAML_MAX_DEPTH:
                    raise _NotPlain
                stack.append([{} if kind is yaml.MappingStartEvent else [], None, False])
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()[0]
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _NotPlain
                continue
            elif kind is yaml.StreamEndEvent:
                return result
            elif kind is yaml.StreamStartEvent or kind is yaml.DocumentEndEvent:
                continue
            else:  # an alias (*name)
                raise _NotPlain
            if not stack:
                result = value
                continue
            top = stack[-1]
            container = top[0]
            if type(container) is list:
                container.append(value)
            elif top[2]:
                container[top[1]] = value
                top[1], top[2] = None, False
            elif isinstance(value, list | dict):
                raise _NotPlain  # an unhashable key
            else:
                top[1], top[2] = value, True
    except yaml.YAMLError as exc:
        raise _NotPlain from exc
    finally:
        loader.dispose()


def _load_yaml(text: str) -> Any:
    try:
        return _plain_yaml(text)
    except _NotPlain:
        pass
    try:
        _check_yaml_events(text)
        # A safe loader (SafeLoader or its libyaml twin): plain data only, never Python objects.
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise TransferError(f"Not valid YAML: {exc}") from exc


def _records(data: Any, fmt: str) -> list[Any]:
    if fmt == "json" and isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]  # the API's list envelope
    if fmt == "bodhi-yaml" and isinstance(data, Mapping):
        data = [data]  # one alias per file, as BodhiApp writes them
    if data is None:
        data = []
    if not isinstance(data, list):
        what = "one alias mapping or a list of them" if fmt == "bodhi-yaml" else "a list of aliases"
        raise TransferError(f"The file must hold {what}.")
    if len(data) > MAX_ROWS:
        raise TransferError(f"At most {MAX_ROWS:,} aliases per import (the file has {len(data):,}).")
    return data


def _flatten(record: Any, *, nested: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A record as flat {field: value} plus the errors of its shape (unknown keys, wrong group types)."""
    if not isinstance(record, Mapping):
        return {}, {"alias": "Each entry must be a mapping of field names to values."}
    flat: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in record.items():
        key = str(key)
        if key in ("request_params", "context_params"):
            names = REQUEST_PARAMS if key == "request_params" else CONTEXT_PARAMS
            if value is None:
                continue
            if not isinstance(value, Mapping):
                errors[key] = "Must be a mapping of parameter names to values."
                continue
            for name, item in value.items():
                name = str(name)
                if name in names:
                    flat[name] = item
                else:
                    errors[f"{key}.{name}"] = f"Unknown parameter (known: {', '.join(names)})."
        elif key in BASIC_FIELDS or (not nested and key in EDITABLE_FIELDS):
            flat[key] = value
        elif key in READ_ONLY_KEYS:
            if key == "source":
                flat["_source"] = value
        else:
            errors[key] = "Unknown field."
    return flat, errors


def _csv_value(name: str, cell: str) -> Any:
    if cell[:2] in {f"'{c}" for c in _FORMULA_START}:
        cell = cell[1:]  # the quote our export adds against formula injection
    if cell == "":
        return None
    model_field = Alias._meta.get_field(name)
    if name == "stop":
        try:
            return json.loads(cell)
        except ValueError as exc:
            raise ValueError('Write stop words as a JSON list, e.g. ["</s>", "###"].') from exc
    if isinstance(model_field, models.IntegerField):
        try:
            return int(cell)
        except ValueError as exc:
            raise ValueError(f"Not a whole number: {cell!r}.") from exc
    if isinstance(model_field, models.FloatField):
        try:
            return float(cell)
        except ValueError as exc:
            raise ValueError(f"Not a number: {cell!r}.") from exc
    return cell


def _read_csv(text: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return []
        header = [name.strip() for name in header]
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if unknown:
            raise TransferError(f"Unknown CSV columns: {', '.join(unknown)} (known: {', '.join(CSV_COLUMNS)}).")
        if "alias" not in header:
            raise TransferError("The CSV needs a header row with an 'alias' column.")
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise TransferError(f"At most {MAX_ROWS:,} aliases per import.")
            flat: dict[str, Any] = {}
            errors: dict[str, str] = {}
            if len(cells) > len(header):
                errors["alias"] = f"The row has {len(cells)} cells; the header names {len(header)}."
            for name, cell in zip(header, cells, strict=False):
                if name == "source":
                    flat["_source"] = cell or None
                    continue
                try:
                    flat[name] = _csv_value(name, cell)
                except ValueError as exc:
                    errors[name] = str(exc)
            rows.append((flat, errors))
        return rows
    except csv.Error as exc:
        raise TransferError(f"Not valid CSV: {exc}") from exc


def parse(content: bytes | str, fmt: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Rows of a file as (flat values, shape errors). Raises TransferError when the file itself is unreadable."""
    if fmt not in FORMATS:
        raise TransferError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    text = _text(content)
    if fmt == "csv":
        return _read_csv(text)
    try:
        data = _load_yaml(text) if fmt == "bodhi-yaml" else json.loads(text)
    except RecursionError as exc:
        raise TransferError("The file is nested too deeply.") from exc
    except ValueError as exc:
        raise TransferError(f"Not valid JSON: {exc}") from exc
    return [_flatten(record, nested=fmt == "bodhi-yaml") for record in _records(data, fmt)]


# --- writing ---------------------------------------------------------------------------------------------------

# What the formats read of an alias, as one plain row of a values_list (no model instance, no timestamps).
ExportRow = namedtuple("ExportRow", CSV_COLUMNS)  # type: ignore[misc]
EXPORT_CHUNK = 2000  # rows read per round trip (a server-side cursor on PostgreSQL) and written per piece


def export_rows(aliases: Iterable[Alias] | models.QuerySet) -> Iterable[Any]:
    """The rows to write: a queryset of aliases is read as ExportRows in chunks (its filters and order kept);
    anything else (model instances, a list) is written as given."""
    if isinstance(aliases, models.QuerySet):
        return map(ExportRow._make, aliases.values_list(*CSV_COLUMNS).iterator(chunk_size=EXPORT_CHUNK))
    return aliases


def _params(alias: Any, names: Iterable[str]) -> dict[str, Any]:
    values = {}
    for name in names:
        value = getattr(alias, name)
        if value not in (None, "", []):
            values[name] = value
    return values


def alias_as_bodhi(alias: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"alias": alias.alias, "repo": alias.repo, "filename": alias.filename,
                            "snapshot": alias.snapshot}  # fmt: skip
    if alias.chat_template != EMBEDDED_CHAT_TEMPLATE:
        data["chat_template"] = alias.chat_template
    for group, names in (("request_params", REQUEST_PARAMS), ("context_params", CONTEXT_PARAMS)):
        values = _params(alias, names)
        if values:
            data[group] = values
    return data


_quoted = json.encoder.encode_basestring  # json.dumps(text, ensure_ascii=False) of a str, in C, without an encoder


def _yaml_scalar(value: Any) -> str:
    # JSON's spelling of a string, number or list is also YAML's (a double-quoted scalar, a flow sequence), and
    # quoting every string keeps "yes", "0x10" or "null" text; writing it ourselves is ~20x faster than yaml.dump.
    # The common types are spelled as json.dumps spells them, without its per-call encoder.
    kind = type(value)
    if kind is str:
        return _quoted(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        text = float.__repr__(value)
        # YAML 1.1 (PyYAML, our own import) reads 1e-07 as text: its floats need a point, so write 1.0e-07.
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    return json.dumps(value, ensure_ascii=False)


_UNSET = (None, "", [])
_BODHI_GROUPS = tuple(
    (f"  {group}:\n", tuple((name, f"    {name}: ") for name in names))
    for group, names in (("request_params", REQUEST_PARAMS), ("context_params", CONTEXT_PARAMS))
)


def _bodhi_text(alias: Any) -> str:
    """alias_as_bodhi(alias) as an item of a models.yaml list, written straight from the row (an export writes
    100,000 of them)."""
    parts = ["- alias: ", _yaml_scalar(alias.alias), "\n  repo: ", _yaml_scalar(alias.repo), "\n  filename: ",
             _yaml_scalar(alias.filename), "\n  snapshot: ", _yaml_scalar(alias.snapshot), "\n"]  # fmt: skip
    if alias.chat_template != EMBEDDED_CHAT_TEMPLATE:
        parts += ("  chat_template: ", _yaml_scalar(alias.chat_template), "\n")
    for header, names in _BODHI_GROUPS:
        started = False
        for name, prefix in names:
            value = getattr(alias, name)
            if value not in _UNSET:
                if not started:
                    parts.append(header)
                    started = True
                parts += (prefix, _yaml_scalar(value), "\n")
    return "".join(parts)


def alias_as_json(alias: Any) -> dict[str, Any]:
    """The API's shape for the editable fields (and source), without the per-host file status."""
    return {
        **{name: getattr(alias, name) for name in BASIC_FIELDS},
        "source": alias.source,
        "request_params": {name: getattr(alias, name) for name in REQUEST_PARAMS},
        "context_params": {name: getattr(alias, name) for name in CONTEXT_PARAMS},
    }


_json_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(…, ensure_ascii=False), one encoder


def _csv_cell(value: Any) -> Any:
    """A cell as the csv writer takes it: None (an empty cell), numbers (written as str() writes them, which for a
    float is its repr), text with the formula guard, stop words as a JSON list."""
    kind = type(value)
    if kind is str:
        return "'" + value if value.startswith(_FORMULA_START) else value
    if kind is list:
        return json.dumps(value, ensure_ascii=False)
    return value


def _chunked(pieces: Iterable[str], size: int = EXPORT_CHUNK) -> Iterable[str]:
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) == size:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def export_chunks(aliases: Iterable[Alias] | models.QuerySet, fmt: str) -> Iterable[str]:
    """The file's text in pieces of EXPORT_CHUNK aliases, so a large export is streamed: a queryset is read in
    chunks as plain rows (export_rows), never held whole."""
    if fmt not in FORMATS:
        raise TransferError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    rows = export_rows(aliases)
    if fmt == "json":
        yield "["
        yield from _chunked(
            ("," if index else "") + "\n" + _json_text(alias_as_json(row)) for index, row in enumerate(rows)
        )
        yield "\n]\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            values = row if type(row) is ExportRow else [getattr(row, name) for name in CSV_COLUMNS]
            writer.writerow([_csv_cell(value) for value in values])
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    else:
        wrote = False
        for chunk in _chunked(_bodhi_text(row) for row in rows):
            wrote = True
            yield chunk
        if not wrote:
            yield "[]\n"


def export_text(aliases: Iterable[Alias] | models.QuerySet, fmt: str) -> str:
    return "".join(export_chunks(aliases, fmt))


# --- the plan --------------------------------------------------------------------------------------------------


@dataclass
class ImportRow:
    """What one row of the file would do. `values` is the flat data to save (for create/update)."""

    number: int  # 1-based position in the file
    alias: str
    action: str = "create"  # create | update | unchanged | error
    errors: dict[str, str] = field(default_factory=dict)
    suggestions: dict[str, Any] = field(default_factory=dict)  # field -> closest valid value
    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    target: Alias | None = None  # the existing alias an update changes

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"row": self.number, "alias": self.alias, "action": self.action,
                                "errors": self.errors}  # fmt: skip
        if self.suggestions:
            data["suggestions"] = self.suggestions
        if self.note:
            data["note"] = self.note.strip()
        return data


def _messages(exc: ValidationError) -> dict[str, str]:
    return {name: " ".join(str(m) for m in messages) for name, messages in exc.message_dict.items()}


def _bounded(name: str) -> Bounded | None:
    return next((v for v in Alias._meta.get_field(name).validators if isinstance(v, Bounded)), None)


def _closest(name: str, value: Any, values: Mapping[str, Any]) -> Any:
    """The valid value nearest to a refused one, or None when there is no sensible guess."""
    if name == "chat_template" and isinstance(value, str):
        if value in BODHI_TEMPLATES:
            return BODHI_TEMPLATES[value]
        choices = (EMBEDDED_CHAT_TEMPLATE, *BUILTIN_CHAT_TEMPLATES)
        match = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.5)
        return match[0] if match else EMBEDDED_CHAT_TEMPLATE
    if name == "alias" and isinstance(value, str):
        cleaned = re.sub(r"[^A-Za-z0-9._:-]+", "-", value).lstrip("._:-")[:ALIAS_NAME_MAX].rstrip("-")
        return cleaned if cleaned and ALIAS_NAME_RE.fullmatch(cleaned) else None
    if name == "snapshot":
        return "main"
    if name == "user" and isinstance(value, str):
        return "".join(c for c in value if control_problem(c) is None)[:USER_MAX]
    if name == "stop" and isinstance(value, list):
        words: list[str] = []
        for word in value:
            if not isinstance(word, str):
                continue
            word = "".join(c for c in word if control_problem(c, allowed=STOP_ALLOWED_CONTROLS) is None)
            word = word[:STOP_MAX_LENGTH]
            if word and word not in words:
                words.append(word)
        return words[:STOP_MAX_COUNT]
    if name in ("n_keep", "max_tokens", "n_predict"):
        n_ctx = values.get("n_ctx")
        if isinstance(value, int) and isinstance(n_ctx, int) and n_ctx > 0 and value > n_ctx:
            return n_ctx
    bounded = _bounded(name) if name in EDITABLE_FIELDS else None
    if bounded is not None and isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return None
        clamped = min(max(value, bounded.low), bounded.high)
        candidates = [clamped, *bounded.specials]
        best = min(candidates, key=lambda c: abs(c - value))
        return int(best) if isinstance(Alias._meta.get_field(name), models.IntegerField) else float(best)
    return None


def _type_problem(name: str, value: Any) -> str | None:
    """JSON/YAML types the model fields would coerce silently (True for a number, 1 for a name)."""
    if value is None:
        return None
    model_field = Alias._meta.get_field(name)
    if name == "stop":
        return None  # the stop validator says what is wrong
    if isinstance(model_field, models.IntegerField):
        if isinstance(value, bool) or not isinstance(value, int):
            return "Must be a whole number."
    elif isinstance(model_field, models.FloatField):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "Must be a number."
    elif not isinstance(value, str):
        return "Must be text."
    return None


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    """Every editable field, the missing ones at their defaults, as a whole replacement of an alias."""
    data = {name: values.get(name) for name in EDITABLE_FIELDS}
    for name in ("snapshot", "chat_template"):
        if data[name] is None:
            data[name] = Alias._meta.get_field(name).get_default()
    for name in ("alias", "repo", "filename"):
        if data[name] is None:
            data[name] = ""
    if data["stop"] is None:
        data["stop"] = []
    if data["user"] is None:
        data["user"] = ""
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        if isinstance(data[name], int) and not isinstance(data[name], bool):
            data[name] = float(data[name])
    return data


FileCache = dict[tuple[Any, Any, Any], AliasFile]


@dataclass(frozen=True)
class _FileKey:
    """What alias_files reads of an alias (its key, repo, filename and snapshot), without a model instance."""

    pk: int
    repo: str
    filename: str
    snapshot: str


def _prefetch_files(rows: list[dict[str, Any]]) -> FileCache:
    """Each row's file, looked up SYNC-style in batches (two queries per 500 rows, not two per row)."""
    cache: FileCache = {}
    candidates = []
    for values in rows:
        key = (values.get("repo"), values.get("filename"), values.get("snapshot"))
        if key not in cache and all(isinstance(part, str) for part in key):
            cache[key] = None  # type: ignore[assignment]
            candidates.append(_FileKey(pk=len(candidates) + 1, repo=key[0], filename=key[1], snapshot=key[2]))
    for start in range(0, len(candidates), 500):
        batch = candidates[start : start + 500]
        for alias, found in zip(batch, alias_files(batch).values(), strict=True):  # type: ignore[arg-type]
            cache[(alias.repo, alias.filename, alias.snapshot)] = found
    return cache


_SCALARS = (str, int, float, bool, type(None))


def _memo_key(value: Any) -> tuple | None:
    """A key telling apart values the checks treat differently (1, 1.0 and True compare equal), or None."""
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)
    if kind is list and all(type(item) in _SCALARS for item in value):
        return (list, *((type(item), item) for item in value))
    return None


class RowChecker:
    """Alias.full_clean(validate_unique=False, validate_constraints=False) of many rows, without a model instance
    per row and without running a field's checks twice on the same value.

    The same steps in the same order as Model.full_clean: each field's own `clean` (to_python, validate, its
    validators), skipped for blank values exactly as clean_fields does, then the model's cross-field rules
    (Alias.clean) on one reused instance holding the row. A field's checks depend on its value alone, so the
    outcome (cleaned value or errors) is remembered per value: the rows of a file share most of them (repo,
    filename, template, the parameters).
    """

    def __init__(self) -> None:
        self.fields = [field for field in Alias._meta.fields if not field.generated]
        self.instance = Alias(source=Alias.Source.USER)
        self.memo: dict[tuple, tuple[bool, Any]] = {}

    def check(self, values: Mapping[str, Any], *, pk: int | None) -> tuple[Alias, dict[str, str]]:
        """The row on a model instance (cleaned values, as full_clean leaves them) and {field: message}."""
        instance = self.instance
        instance.pk = pk
        for name in EDITABLE_FIELDS:
            setattr(instance, name, values[name])
        errors: dict[str, Any] = {}
        for model_field in self.fields:
            raw = getattr(instance, model_field.attname)
            if model_field.blank and raw in model_field.empty_values:
                continue
            key = _memo_key(raw)
            outcome = self.memo.get((model_field.attname, key)) if key is not None else None
            if outcome is None:
                try:
                    outcome = (True, model_field.clean(raw, instance))
                except ValidationError as exc:
                    outcome = (False, exc.error_list)
                if key is not None:
                    self.memo[(model_field.attname, key)] = outcome
            passed, result = outcome
            if passed:
                # A list is the row's own object (JSONField.clean gives the value back), never a remembered one.
                setattr(instance, model_field.attname, raw if type(raw) is list else result)
            else:
                errors[model_field.name] = result
        try:
            instance.clean()
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        return instance, (_messages(ValidationError(errors)) if errors else {})


def _check(
    values: dict[str, Any], *, pk: int | None, files: FileCache | None = None, checker: RowChecker | None = None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, value in values.items():
        problem = _type_problem(name, value)
        if problem:
            errors[name] = problem
    if errors:
        return errors
    alias, errors = (checker or RowChecker()).check(values, pk=pk)
    if not errors:
        key = (alias.repo, alias.filename, alias.snapshot)
        found = (files or {}).get(key)
        if found is None:
            found = alias_file(alias)
        errors.update(alias_file_problems(alias, found=found))
    return errors


RENAME_PREFETCH = 10  # suffixes -2 … -9 looked up for every conflicting name at once; later ones one by one


def _renamed(name: str, number: int) -> str:
    suffix = f"-{number}"
    return name[: ALIAS_NAME_MAX - len(suffix)] + suffix


def _names_existing(names: Iterable[str]) -> set[str]:
    """The lower-cased names among `names` that an alias has, one query per 500 (the Lower(alias) index)."""
    lowered = sorted({name.lower() for name in names})
    found: set[str] = set()
    for start in range(0, len(lowered), 500):
        batch = lowered[start : start + 500]
        found.update(
            Alias.objects.annotate(name_lower=Lower("alias"))
            .filter(name_lower__in=batch)
            .values_list("name_lower", flat=True)
        )
    return found


def _free_name(name: str, taken: set[str], existing_renames: set[str] | None = None) -> str | None:
    """The first of name-2, name-3, … that neither the file nor the database uses.

    `existing_renames`: which of each conflicting name's first RENAME_PREFETCH candidates the database has,
    looked up for the whole file at once, so renaming many rows does not cost a query each.
    """
    for number in range(2, 10_000):
        candidate = _renamed(name, number)
        if candidate.lower() in taken:
            continue
        # `taken` holds the file's names and the existing aliases among them; the database has the rest.
        if existing_renames is not None and number < RENAME_PREFETCH:
            if candidate.lower() not in existing_renames:
                return candidate
        elif not Alias.objects.by_name(candidate).exists():
            return candidate
    return None


def plan_import(
    rows: list[tuple[dict[str, Any], dict[str, str]]],
    *,
    on_conflict: str = "skip",
    fixes: Mapping[int, Iterable[str]] | None = None,
) -> list[ImportRow]:
    """What importing `rows` would do, row by row, without writing anything.

    `fixes` maps a row number to the fields whose offered closest valid value the user accepted.
    """
    if on_conflict not in CONFLICT_CHOICES:
        raise TransferError(f"on_conflict must be one of {', '.join(CONFLICT_CHOICES)}.")
    fixes = fixes or {}
    names = [str(flat.get("alias") or "") for flat, _errors in rows]
    existing: dict[str, Alias] = {}
    lowered = sorted({name.lower() for name in names if name})
    for start in range(0, len(lowered), 500):
        batch = lowered[start : start + 500]
        # LOWER(alias) IN (...): the expression of the case-insensitive unique index, so the index serves it.
        for alias in Alias.objects.annotate(name_lower=Lower("alias")).filter(name_lower__in=batch):
            existing[alias.alias.lower()] = alias
    taken = set(existing)
    seen: dict[str, int] = {}
    plan: list[ImportRow] = []
    # First every row's values with the accepted fixes, so the files of the values actually checked are looked up
    # together (a fix of the snapshot changes which file a row names).
    prepared: list[tuple[ImportRow, Any, dict[str, Any]]] = []
    for number, ((flat, shape_errors), name) in enumerate(zip(rows, names, strict=True), start=1):
        source = flat.pop("_source", None)
        values = _normalise(flat)
        row = ImportRow(number=number, alias=name, errors=dict(shape_errors))
        for field_name in fixes.get(number, ()):
            suggestion = _closest(field_name, values.get(field_name), values)
            if suggestion is not None and suggestion != values.get(field_name):
                row.note += f"{field_name}: {values.get(field_name)!r} replaced by the closest valid {suggestion!r}. "
                values[field_name] = suggestion
        row.alias = values["alias"] if isinstance(values["alias"], str) else str(values["alias"])
        prepared.append((row, source, values))
    files = _prefetch_files([values for _row, _source, values in prepared])
    existing_renames = None
    if on_conflict == "rename":
        conflicting = {row.alias for row, _source, _values in prepared if row.alias.lower() in existing}
        existing_renames = _names_existing(
            _renamed(name, number) for name in conflicting for number in range(2, RENAME_PREFETCH)
        )
    checker = RowChecker()
    for row, source, values in prepared:
        number = row.number
        plan.append(row)
        key = row.alias.lower()
        if key and key in seen:
            row.action = "error"
            row.errors.setdefault("alias", f"The same name appears earlier in the file (row {seen[key]}).")
            continue
        seen[key] = number
        current = existing.get(key)
        if source == Alias.Source.MODEL:
            if current is not None and current.is_read_only:
                row.action, row.note = "unchanged", "Generated from a local model file; kept as it is."
            else:
                row.action = "error"
                row.errors.setdefault("alias", "Generated from a model file elsewhere; it appears here when the "
                                      "file is in this cache (rescan).")  # fmt: skip
            continue
        if current is not None and on_conflict == "rename" and current.values() != values:
            new_name = _free_name(row.alias, taken, existing_renames)
            if new_name is not None:
                row.note += f"Renamed from {row.alias} (that name is taken)."
                row.alias = values["alias"] = new_name
                current = None
        taken.add(row.alias.lower())
        errors = _check(values, pk=current.pk if current is not None else None, files=files, checker=checker)
        for field_name, message in errors.items():
            row.errors.setdefault(field_name, message)
        if row.errors:
            row.action = "error"
            for field_name in row.errors:
                if field_name in EDITABLE_FIELDS:
                    suggestion = _closest(field_name, values.get(field_name), values)
                    if suggestion is not None and suggestion != values.get(field_name):
                        trial = {**values, field_name: suggestion}
                        pk = current.pk if current is not None else None
                        if field_name not in _check(trial, pk=pk, files=files, checker=checker):
                            row.suggestions[field_name] = suggestion
            continue
        row.values = values
        if current is None:
            row.action = "create"
        elif current.values() == values:
            row.action = "unchanged"
        elif current.is_read_only:
            row.action = "error"
            row.errors["alias"] = (
                f"'{current.alias}' is generated from a local model file and read-only; choose rename."
            )
        elif on_conflict == "skip":
            row.action = "unchanged"
            row.note += "An alias with this name exists; skipped (on conflict: skip)."
        else:
            row.action, row.target = "update", current
    return plan


def plan_counts(plan: list[ImportRow]) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "unchanged": 0, "error": 0}
    for row in plan:
        counts[row.action] += 1
    return counts
