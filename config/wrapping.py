"""Long names (aliases, repos, file paths) wrap at their separators, never in the middle of a word."""

from __future__ import annotations

import html

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# After these a line may break: `owner/` `Llama-` `Q4_` `gguf.` `llama3:`.
SEPARATORS = "/-_.:"
_WBR = "<wbr>"


def wrap_name(value: object) -> SafeString:
    """`value` escaped, with a <wbr> (a line-break opportunity, invisible and not copied) after each separator
    that some character on the same line follows (none at the end, none before a line break)."""
    # Escaping first is safe: none of the separators is changed by escape(), and no entity contains one. Plain
    # replaces rather than a regular expression: three names a row, and re.sub's template was most of their cost.
    # html.escape for a plain string is Django's escape() without its lazy-string checks (three names a row).
    text = html.escape(value) if type(value) is str else escape(value)
    for separator in SEPARATORS:
        if separator in text:
            text = text.replace(separator, separator + _WBR)
    if _WBR + "\n" in text:  # escaped text holds no "<": every <wbr> here is one just added
        text = text.replace(_WBR + "\n", "\n")
    if text.endswith(_WBR):
        text = text[: -len(_WBR)]
    return mark_safe(text)
