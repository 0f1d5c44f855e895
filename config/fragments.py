"""Live fragments rendered once and served to every viewer (issue 12, item 2).

A poll every second from a hundred people asks for the same few fragments; rendering each for each of them was
most of the cost. A fragment is rendered once per distinct content (the caller's key: the figures as shown, and
whatever about the viewer changes the markup, such as their buttons) and kept in the cache (Redis, shared by every
process, when configured; else each process's memory); a poll then costs a cache lookup. The one part that
differs per visitor, the CSRF token in the fragment's forms, is rendered as a placeholder and put in per answer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.crypto import salted_hmac
from django.utils.safestring import SafeString

# Long enough to serve every poll of one state, short enough that nothing stale lingers (a new state is a new key).
FRAGMENT_SECONDS = 30
CACHE_ALIAS = "default"


@functools.cache
def csrf_placeholder() -> str:
    """Unguessable, so no text a user can store (an alias name, an error message) can be taken for it; the same
    in every process with the same SECRET_KEY, since a rendering kept in a shared cache (Redis) is served by
    processes other than the one that rendered it."""
    return f"csrf-placeholder-{salted_hmac('config.fragments.csrf-placeholder', '').hexdigest()[:24]}"


def fragment_key(template: str, parts: Iterable[str]) -> str:
    digest = hashlib.blake2b("\x1f".join((template, *parts)).encode(), digest_size=16).hexdigest()
    return f"fragment:{digest}"


def shared_fragment(
    request: HttpRequest,
    template: str,
    context: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    parts: Iterable[str],
) -> str:
    """`template` rendered with `context`, from the cache when the same `parts` were rendered before; `parts` must
    name everything the markup depends on except the CSRF token. A callable `context` is called only to render
    (when gathering it costs queries that a copy from the cache does without)."""
    cache = caches[CACHE_ALIAS]
    key = fragment_key(template, parts)
    html = cache.get(key)
    if html is None:
        values = context() if callable(context) else context
        html = render_to_string(template, {**values, "csrf_token": csrf_placeholder()})
        cache.set(key, html, FRAGMENT_SECONDS)
    placeholder = csrf_placeholder()
    return html.replace(placeholder, get_token(request)) if placeholder in html else html


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
            html = render_to_string(self.template, {**context(), "csrf_token": csrf_placeholder()})
            if len(self.rendered) >= self.size:
                # Another thread may change it meanwhile (RuntimeError): its own insert made the room then.
                with contextlib.suppress(RuntimeError):
                    self.rendered.pop(next(iter(self.rendered), None), None)
            self.rendered[key] = html
        placeholder = csrf_placeholder()
        if placeholder in html:
            html = html.replace(placeholder, get_token(request))
        return SafeString(html)
