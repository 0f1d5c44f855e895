"""Aliases as their pages and API name them (config/crud.py)."""

from __future__ import annotations

from aliases.selectors import alias_get
from aliases.services import AliasReadOnlyError
from config.crud import NamedKind

ALIASES = NamedKind(
    noun="alias",
    lookup=lambda name: alias_get(name=name),
    read_only_error=AliasReadOnlyError,
    is_read_only=lambda alias: alias.is_read_only,
    list_url_name="aliases:list",
    read_only_template="aliases/alias_read_only.html",
)
