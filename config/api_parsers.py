"""The JSON parser of every API view (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]): DRF's, with limits.

Its own module because DRF imports it while loading `rest_framework.views`, which `config.api` imports.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers
from rest_framework.utils.json import strict_constant

# --- request bodies: size and depth ----------------------------------------------------------------------------

# Deeper than any body this API takes (an alias is three levels); Python's JSON decoder recurses once per level
# and a few thousand levels exhaust the stack (RecursionError, a 500).
MAX_JSON_DEPTH = 32


def body_limit() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def body_too_large_message(limit: int) -> str:
    size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit:,} bytes"
    return f"The request body is larger than this server accepts ({size}); send less."


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the value may be as deep as the decoder allowed)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's strict JSON parser with limits: DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413) and MAX_JSON_DEPTH levels.

    Django applies the size limit only to `request.body` and form data, which DRF does not read. The middleware
    refuses a large body by its Content-Length; a body without one (possible under ASGI) is caught here, by
    reading at most one byte more than the limit.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = body_limit()
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            from config.api import request_too_large  # not at the top: DRF imports this module while loading

            raise request_too_large()
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except RecursionError as exc:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        except (ValueError, LookupError) as exc:  # also UnicodeDecodeError; LookupError: an unknown charset
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if _json_depth(data) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data
