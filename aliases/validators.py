"""Every rule an alias must satisfy, in one place.

The model attaches these validators to its fields; the form, the API serializer, the admin and imports all reach
them through `Alias.full_clean()`. Forms and the API schema read the bounds back from the `Bounded` instances, so a
bound is written once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

ALIAS_NAME_MAX = 64
# Aliases generated from local files are named `{repo}:{quant}`, so they may hold a slash and be longer.
MODEL_ALIAS_NAME_MAX = 96 + 1 + 63
REPO_MAX = 96
FILENAME_MAX = 255
SNAPSHOT_MAX = 128
USER_MAX = 256
STOP_MAX_COUNT = 4
STOP_MAX_LENGTH = 128

BUILTIN_CHAT_TEMPLATES = (
    "llama3",
    "llama2",
    "phi3",
    "gemma",
    "deepseek",
    "command-r",
    "openchat",
    "tinyllama",
    "chatml",
)
EMBEDDED_CHAT_TEMPLATE = "embedded"

# Patterns are matched whole (`fullmatch`): with `match` and `$`, "name\n" passed, because `$` also matches before a
# final newline. The `*_PATTERN` strings are the same rules in the ECMA-262 syntax of the OpenAPI schema, where `$`
# means the end; tests check that both spellings agree.
ALIAS_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# Starts and ends with a letter or digit: the Hub (huggingface_hub's repo id check) refuses a part ending in . or -.
REPO_PART_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
COMMIT_PATTERN = r"[0-9a-f]{40}"
REF_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]*"

ALIAS_NAME_RE = re.compile(ALIAS_NAME_PATTERN[1:-1])
REPO_PART_RE = re.compile(REPO_PART_PATTERN)
COMMIT_RE = re.compile(COMMIT_PATTERN)
REF_RE = re.compile(REF_PATTERN)

MODEL_ALIAS_NAME_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
)

# The same rules for the OpenAPI schema (ECMA-262: `$` is the end of the text; lookaheads are allowed there).
# (Lone surrogates are refused too, but a pattern cannot name them in every regex engine that reads the schema.)
_NO_CONTROLS = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
_SCHEMA_REPO_BODY = rf"(?!.*(?:--|\.\.)){REPO_PART_PATTERN}/{REPO_PART_PATTERN}"
REPO_SCHEMA_PATTERN = rf"^{_SCHEMA_REPO_BODY}$"
FILENAME_SCHEMA_PATTERN = rf"^(?!/)(?!.*//)(?!(?:.*/)?\.\.?(?:/|$))[^\\{_NO_CONTROLS}]*\.[gG][gG][uU][fF]$"
SNAPSHOT_SCHEMA_PATTERN = (
    r"^(?:[0-9a-f]{40}|(?![0-9a-fA-F]{40}$)(?!.*(?:\.\.|//))(?!.*(?:/|\.|\.lock)$)[A-Za-z0-9][A-Za-z0-9._/-]*)$"
)
TEXT_SCHEMA_PATTERN = rf"^[^{_NO_CONTROLS}]*$"
STOP_WORD_SCHEMA_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]+$"


def chat_template_schema_pattern() -> str:
    # Not re.escape: it writes `\-`, which an ECMA regex in unicode mode refuses; the names need no escaping.
    names = "|".join((EMBEDDED_CHAT_TEMPLATE, *BUILTIN_CHAT_TEMPLATES))
    return rf"^(?:{names}|{_SCHEMA_REPO_BODY})$"


# One directory entry holds at most 255 bytes on the usual file systems (ext4, xfs, btrfs, APFS, NTFS in UTF-16
# units): a longer segment fails with "File name too long" when the file is written, long after the request.
PATH_SEGMENT_MAX_BYTES = 255
# Stop words are often a newline or a tab; every other control character is refused there too.
STOP_ALLOWED_CONTROLS = frozenset("\n\r\t")

# --- text that may be stored at all ---------------------------------------------------------------------------


def control_problem(value: str, *, allowed: frozenset[str] = frozenset()) -> str | None:
    """Why `value` cannot be stored as text, or None.

    Refused anywhere in a value: NUL (PostgreSQL cannot store it, SQLite truncates some uses), other C0 and C1
    control characters and DEL (they break paths, logs and page layout), line/paragraph separators, and lone
    surrogates (JSON can spell them, UTF-8 cannot encode them, so the database would fail).
    """
    for char in value:
        if char in allowed:
            continue
        code = ord(char)
        if code == 0:
            return "NUL characters are not allowed."
        if code < 32 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
            return f"Control characters are not allowed (found U+{code:04X})."
        if 0xD800 <= code <= 0xDFFF:
            return f"Unpaired surrogate characters are not allowed (found U+{code:04X})."
    return None


def validate_no_control_characters(value: object) -> None:
    if isinstance(value, str):
        problem = control_problem(value)
        if problem:
            raise ValidationError(problem, code="control_character")


def segment_too_long(value: str) -> str | None:
    """Why a `/`-separated path has a segment the file system cannot name, or None."""
    for segment in value.split("/"):
        size = len(segment.encode("utf-8", "surrogatepass"))
        if size > PATH_SEGMENT_MAX_BYTES:
            return (
                f"Each part of the path between '/' may have at most {PATH_SEGMENT_MAX_BYTES} bytes in UTF-8 "
                f"(one has {size} bytes): the file system cannot store a longer name."
            )
    return None


# --- the fields ------------------------------------------------------------------------------------------------


def validate_alias_name(value: str) -> None:
    problem = control_problem(value)
    if problem:
        raise ValidationError(problem, code="control_character")
    if not ALIAS_NAME_RE.fullmatch(value):
        raise ValidationError(
            "Use 1–64 characters: letters, digits, '.', '_', ':' or '-', starting with a letter or digit "
            "(no spaces or slashes).",
            code="invalid_alias",
        )


def model_alias_name_ok(value: str) -> bool:
    return bool(MODEL_ALIAS_NAME_RE.fullmatch(value))


def repo_problem(value: str) -> str | None:
    """Why `value` is not a Hugging Face repo id `owner/name`, or None when it is one."""
    problem = control_problem(value)
    if problem:
        return problem
    if len(value) > REPO_MAX:
        return f"A repo id has at most {REPO_MAX} characters (this one has {len(value)})."
    parts = value.split("/")
    if len(parts) != 2:
        return "Use the form owner/name, e.g. TheBloke/Llama-2-7B-GGUF."
    for part in parts:
        if not REPO_PART_RE.fullmatch(part):
            return (
                "Each part of owner/name starts and ends with a letter or digit and holds only letters, digits, '.', "
                "'_' or '-'."
            )
        if "--" in part or ".." in part:
            return "A repo id may not contain '--' or '..'."
    return None


def validate_repo(value: str) -> None:
    problem = repo_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_repo")


def validate_filename(value: str) -> None:
    problem = control_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_filename")
    if "\\" in value:
        raise ValidationError("Use '/' between folders; a backslash is not allowed.", code="invalid_filename")
    if value.startswith("/"):
        raise ValidationError("The path is relative to the repo: no leading '/'.", code="invalid_filename")
    if any(segment in ("", ".", "..") for segment in value.split("/")):
        raise ValidationError("Empty, '.' and '..' folder names are not allowed in the path.", code="invalid_filename")
    if not value.lower().endswith(".gguf"):
        raise ValidationError("The file must be a GGUF file (ending in .gguf).", code="invalid_filename")
    too_long = segment_too_long(value)
    if too_long:
        raise ValidationError(too_long, code="name_too_long")


def validate_snapshot(value: str) -> None:
    if COMMIT_RE.fullmatch(value):
        return
    if (
        not REF_RE.fullmatch(value)
        or ".." in value
        or "//" in value
        or value.endswith(("/", ".", ".lock"))
        or (len(value) == 40 and all(c in "0123456789abcdefABCDEF" for c in value))
    ):
        raise ValidationError(
            "Use a 40-character lowercase commit hash or a branch/tag name such as 'main'.",
            code="invalid_snapshot",
        )


def validate_chat_template(value: str) -> None:
    if value == EMBEDDED_CHAT_TEMPLATE or value in BUILTIN_CHAT_TEMPLATES:
        return
    if "/" in value and repo_problem(value) is None:
        return
    raise ValidationError(
        f"Use '{EMBEDDED_CHAT_TEMPLATE}', a built-in template ({', '.join(BUILTIN_CHAT_TEMPLATES)}) "
        "or an owner/repo whose tokenizer_config holds the template.",
        code="invalid_chat_template",
    )


def validate_stop(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Stop words are a list of strings.", code="invalid_stop")
    if len(value) > STOP_MAX_COUNT:
        raise ValidationError(
            f"At most {STOP_MAX_COUNT} stop words are allowed (got {len(value)}).", code="too_many_stop_words"
        )
    for item in value:
        if not 1 <= len(item) <= STOP_MAX_LENGTH:
            raise ValidationError(
                f"Each stop word has 1–{STOP_MAX_LENGTH} characters (one has {len(item)}).",
                code="invalid_stop_length",
            )
        problem = control_problem(item, allowed=STOP_ALLOWED_CONTROLS)
        if problem:
            raise ValidationError(
                f"{problem.rstrip('.')} in a stop word (newline, carriage return and tab are fine).",
                code="control_character",
            )
    if len(set(value)) != len(value):
        duplicates = sorted({item for item in value if value.count(item) > 1})
        raise ValidationError(
            "Stop words must be different from each other (repeated: %(repeated)s).",
            code="duplicate_stop_words",
            params={"repeated": ", ".join(repr(item) for item in duplicates)},
        )


def _fmt(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return f"{number:,}" if isinstance(number, int) and abs(number) >= 10_000 else str(number)


@deconstructible
class Bounded:
    """`low ≤ value ≤ high`, or one of a few special values (e.g. n_ctx 0 = the model's default).

    Rejects NaN and infinities, which compare false against both ends and would slip through a plain range check.
    """

    def __init__(self, low: float, high: float, specials: Iterable[float] = (), special_help: str = ""):
        self.low = low
        self.high = high
        self.specials = tuple(specials)
        self.special_help = special_help

    def describe(self) -> str:
        text = f"between {_fmt(self.low)} and {_fmt(self.high)}"
        if self.specials:
            text = f"{' or '.join(_fmt(s) for s in self.specials)}, or {text}"
        return text

    def __call__(self, value: float) -> None:
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("Enter a finite number.", code="not_finite")
        if value in self.specials or self.low <= value <= self.high:
            return
        raise ValidationError(
            "Must be %(allowed)s (got %(value)s).",
            code="out_of_range",
            params={"allowed": self.describe(), "value": _fmt(value)},
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bounded) and (self.low, self.high, self.specials) == (
            other.low,
            other.high,
            other.specials,
        )

    def __hash__(self) -> int:
        return hash((self.low, self.high, self.specials))
