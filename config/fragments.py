"""Live fragments rendered once and served to every viewer (issue 12, item 2).

A poll every second from a hundred people asks for the same few fragments; rendering each for each of them was
most of the cost. A fragment is rendered once per distinct content (the caller's key: the figures as shown, and
whatever about the viewer changes the markup, such as their buttons) and kept in the process's cache; a poll then
costs a cache lookup. The one part that differs per visitor, the CSRF token in the fragment's forms, is rendered
as a placeholder and put in per answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

# Long enough to serve every poll of one state, short enough that nothing stale lingers (a new state is a new key).
FRAGMENT_SECONDS = 30
CACHE_ALIAS = "default"
# Unguessable, so no text a user can store (an alias name, an error message) can be taken for it.
_CSRF_PLACEHOLDER = f"csrf-placeholder-{secrets.token_hex(12)}"


def fragment_key(template: str, parts: Iterable[str]) -> str:
    digest = hashlib.blake2b("\x1f".join((template, *parts)).encode(), digest_size=16).hexdigest()
    return f"fragment:{digest}"


def shared_fragment(request: HttpRequest, template: str, context: Mapping[str, Any], *, parts: Iterable[str]) -> str:
    """`template` rendered with `context`, from the cache when the same `parts` were rendered before; `parts` must
    name everything the markup depends on except the CSRF token."""
    cache = caches[CACHE_ALIAS]
    key = fragment_key(template, parts)
    html = cache.get(key)
    if html is None:
        html = render_to_string(template, {**context, "csrf_token": _CSRF_PLACEHOLDER})
        cache.set(key, html, FRAGMENT_SECONDS)
    return html.replace(_CSRF_PLACEHOLDER, get_token(request)) if _CSRF_PLACEHOLDER in html else html


class RenderedByKey:
    """Markup that is a function of its key alone (no rows, no clock), rendered once per key and process.

    For the parts every page repeats (the nav, a list's filter form): the caller's key must name everything the
    markup depends on but the CSRF token, which is rendered as a placeholder and put in per answer. Nothing in it
    can go stale: a different input is a different key. Bounded; the oldest key goes first.
    """

    def __init__(self, template: str, *, size: int = 512):
        self.template = template
        self.size = size
        self.rendered: dict[Hashable, str] = {}

    def render(self, request: HttpRequest, key: Hashable, context: Callable[[], Mapping[str, Any]]) -> SafeString:
        html = self.rendered.get(key)
        if html is None:
            html = render_to_string(self.template, {**context(), "csrf_token": _CSRF_PLACEHOLDER})
            if len(self.rendered) >= self.size:
                # Another thread may change it meanwhile (RuntimeError): its own insert made the room then.
                with contextlib.suppress(RuntimeError):
                    self.rendered.pop(next(iter(self.rendered), None), None)
            self.rendered[key] = html
        if _CSRF_PLACEHOLDER in html:
            html = html.replace(_CSRF_PLACEHOLDER, get_token(request))
        return SafeString(html)
