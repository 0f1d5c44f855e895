"""Long names (aliases, repos, file paths) wrap at their separators, never in the middle of a word."""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# After these a line may break: `owner/` `Llama-` `Q4_` `gguf.` `llama3:`.
_SEPARATOR_RE = re.compile(r"([/\-_.:])(?=.)")


def wrap_name(value: object) -> SafeString:
    """`value` escaped, with a <wbr> (a line-break opportunity, invisible and not copied) after each separator."""
    # Escaping first is safe: none of the separators is changed by escape(), and no entity contains one.
    return mark_safe(_SEPARATOR_RE.sub(r"\1<wbr>", escape(value)))
