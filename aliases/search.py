"""The alias search syntax, the same in the list page's search box and in the API's `search`.

Free words match the alias, repo or file name (one case-insensitive substring, as the quick search always did).
`field:value` narrows by one field:

- text fields contain the value, ignoring case: `repo:TheBloke`, `file:Q4_K_M`, `alias:chat`, `snapshot:main`,
  `template:llama3` (the chat template); `source:user` or `source:model` is exact;
- number fields compare: `n_ctx:>=8192`, `temperature:<0.5`, `seed:42`, `top_p:0.8..0.95` (a range, both ends
  included); every request and context parameter with a number value can be used;
- a value with spaces goes in double quotes: `template:"my template"`; so does free text holding a colon that
  should not be read as a field (`"repo:x"`).

A word whose part before the colon is not a field name stays free text, so a generated alias's own name
(`owner/repo:Q4_K_M`) still finds it. A known field with a value it cannot take is an error naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.sql.where import AND, WhereNode

from aliases.models import CONTEXT_PARAMS, REQUEST_PARAMS, Alias
from config.search import text_search

SEARCH_FIELDS = ("alias", "repo", "filename")
TEXT_KEYS = {
    "alias": "alias",
    "repo": "repo",
    "file": "filename",
    "filename": "filename",
    "snapshot": "snapshot",
    "template": "chat_template",
    "chat_template": "chat_template",
}
NUMBER_KEYS = tuple(
    name
    for name in (*REQUEST_PARAMS, *CONTEXT_PARAMS)
    if isinstance(Alias._meta.get_field(name), models.IntegerField | models.FloatField | models.DecimalField)
)
# One word: `key:"quoted value"`, `key:value`, `"quoted free text"` or a bare word.
_TOKEN = re.compile(r'(?P<key>[A-Za-z_]+):(?:"(?P<quoted>[^"]*)"|(?P<value>\S*))|"(?P<phrase>[^"]*)"|(?P<word>\S+)')
_COMPARISON = re.compile(r"^(?P<op>>=|<=|>|<|=)?(?P<number>.*)$")
_OPERATORS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "exact", None: "exact"}

HELP = (
    "Words match the alias, repo or file. Narrow with field:value, e.g. repo:TheBloke n_ctx:>=8192 "
    "temperature:<0.5 template:llama3 source:user top_p:0.8..0.95; quote values with spaces."
)


@dataclass(frozen=True)
class ParsedSearch:
    text: str
    condition: Q


def _number(field: str, text: str):
    """The value as the field holds it, or a ValidationError saying what the field takes."""
    model_field = Alias._meta.get_field(field)
    try:
        if isinstance(model_field, models.IntegerField):
            value = Decimal(text)
            if value != value.to_integral_value():
                raise InvalidOperation
            return int(value)
        return float(Decimal(text))
    except (InvalidOperation, ValueError):
        kind = "a whole number" if isinstance(model_field, models.IntegerField) else "a number"
        raise ValidationError(f"{field} needs {kind}, e.g. {field}:>=8 (got {text!r}).", code="search") from None


def _number_condition(field: str, text: str) -> Q:
    if ".." in text and not text.startswith(".."):
        low, _, high = text.partition("..")
        return Q(**{f"{field}__gte": _number(field, low), f"{field}__lte": _number(field, high)})
    match = _COMPARISON.match(text)
    if match is None or not match["number"]:
        raise ValidationError(f"{field} needs a number, e.g. {field}:>=8 (got {text!r}).", code="search")
    return Q(**{f"{field}__{_OPERATORS[match['op']]}": _number(field, match["number"])})


# SQLite's FTS5 trigram index of alias, repo and filename (migration 0008); PostgreSQL's pg_trgm GIN indexes serve
# the LIKE itself (migration 0007), so there the search stays plain `icontains`.
FULLTEXT_TABLE = "aliases_alias_search"
FULLTEXT_COLUMNS = {"alias", "repo", "filename"}
# A trigram index cannot answer for fewer than three characters; such a term is left to the LIKE alone.
FULLTEXT_MIN_LENGTH = 3


def _fulltext_match(text: str, columns: tuple[str, ...]) -> str:
    """An FTS5 query finding `text` as one phrase in any of `columns`: the user's text is one FTS5 string (its
    double quotes doubled), so nothing in it is FTS syntax."""
    quoted = text.replace('"', '""')
    return f'{{{" ".join(columns)}}} : "{quoted}"'


class FullTextMatch(RawSQL):
    """The rowids of the aliases whose `columns` may hold `text`, by the trigram index (a class of its own so that
    alias_search_unnarrowed can find it)."""

    def __init__(self, text: str, columns: tuple[str, ...]):
        super().__init__(
            f"SELECT rowid FROM {FULLTEXT_TABLE} WHERE {FULLTEXT_TABLE} MATCH %s", [_fulltext_match(text, columns)]
        )


def _fulltext_condition(text: str, columns: tuple[str, ...]) -> Q:
    """Rows whose `columns` may hold `text` as a substring, by the trigram index: every row LIKE finds and perhaps
    more (the index folds non-ASCII case too, LIKE only ASCII), so it narrows, and the LIKE beside it decides."""
    return Q(pk__in=FullTextMatch(text, columns))


def alias_search_unnarrowed(queryset: QuerySet[Alias]) -> QuerySet[Alias] | None:
    """`queryset` without the trigram index's narrowing; None when nothing narrows it. The same rows: each
    narrowing is ANDed with the LIKE that decides (which implies it), and only those on the chain of plain ANDs
    from the top of the WHERE are taken out (never one under an OR or a NOT)."""
    unnarrowed = queryset.all()
    return unnarrowed if _drop_fulltext(unnarrowed.query.where) else None


def _drop_fulltext(node: WhereNode) -> bool:
    if node.connector != AND or node.negated:
        return False
    dropped = False
    kept = []
    for child in node.children:
        if isinstance(getattr(child, "rhs", None), FullTextMatch):
            dropped = True
            continue
        if isinstance(child, WhereNode):
            dropped = _drop_fulltext(child) or dropped
        kept.append(child)
    node.children = kept
    return dropped


def _uses_fulltext(queryset: QuerySet[Alias], text: str) -> bool:
    return (
        connections[queryset.db].vendor == "sqlite"
        and len(text) >= FULLTEXT_MIN_LENGTH
        and "\x00" not in text  # an FTS5 string ends at a NUL; the API refuses NUL anyway
    )


def _text_condition(queryset: QuerySet[Alias], field: str, value: str) -> Q:
    condition = Q(**{f"{field}__icontains": value})
    if field in FULLTEXT_COLUMNS and _uses_fulltext(queryset, value):
        condition &= _fulltext_condition(value, (field,))
    return condition


def parse_search(text: str, queryset: QuerySet[Alias] | None = None) -> ParsedSearch:
    """Split a search into its free text and its field conditions; ValidationError for a bad field value."""
    words: list[str] = []
    condition = Q()
    for match in _TOKEN.finditer(text or ""):
        key = (match["key"] or "").lower()
        if match["phrase"] is not None:
            words.append(match["phrase"])
            continue
        if not key or (key not in TEXT_KEYS and key not in NUMBER_KEYS and key != "source"):
            words.append(match.group(0))
            continue
        value = match["quoted"] if match["quoted"] is not None else match["value"]
        if value == "":
            raise ValidationError(f"{key}: needs a value, e.g. {key}:something.", code="search")
        if key == "source":
            if value.lower() not in Alias.Source.values:
                choices = " or ".join(Alias.Source.values)
                raise ValidationError(f"source is {choices} (got {value!r}).", code="search")
            condition &= Q(source=value.lower())
        elif key in TEXT_KEYS:
            condition &= (
                Q(**{f"{TEXT_KEYS[key]}__icontains": value})
                if queryset is None
                else _text_condition(queryset, TEXT_KEYS[key], value)
            )
        else:
            condition &= _number_condition(key, value)
    return ParsedSearch(text=" ".join(words), condition=condition)


def alias_search(queryset: QuerySet[Alias], text: str) -> QuerySet[Alias]:
    """The aliases a search finds (see the module's docstring); raises ValidationError for a bad field value."""
    parsed = parse_search(text, queryset)
    queryset = queryset.filter(parsed.condition)
    free_text = parsed.text.strip()
    if _uses_fulltext(queryset, free_text):
        queryset = queryset.filter(_fulltext_condition(free_text, SEARCH_FIELDS))
    return text_search(queryset, SEARCH_FIELDS, free_text)


def validate_search(text: str) -> None:
    """For the search box: the same errors the search itself raises."""
    parse_search(text)
