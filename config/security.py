"""Response headers every page and API answer carries, beyond what Django's SecurityMiddleware and django-csp set."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


def permissions_policy(features: list[str]) -> str:
    """`camera=(), microphone=(), ...`: each feature allowed for no origin at all, this site included."""
    return ", ".join(f"{feature}=()" for feature in features)


def keeps_private_revalidation(response: HttpResponse) -> bool:
    """A view that chose `private, no-cache` wants the browser to keep its copy and ask with If-None-Match every
    time (the active-downloads poll answers an unchanged state with a bodiless 304). No other cache may store it
    and the browser never shows it without asking, so it is left as the view set it: `no-store` would make the
    browser drop the copy and every poll would carry the whole fragment again.
    """
    directives = {part.strip().split("=", 1)[0].lower() for part in response.get("Cache-Control", "").split(",")}
    return {"private", "no-cache"} <= directives


class SecurityHeadersMiddleware:
    """Permissions-Policy on every response, and `Cache-Control: private, no-store` on every response to a
    signed-in user (pages, htmx fragments, API answers), so no shared cache, proxy or later user of the same
    browser can read one person's pages back.

    Runs after authentication; for API requests DRF sets `request.user` from the bearer token during the view,
    so token-authenticated answers count as signed-in too. Static files never get here: WhiteNoise, earlier in
    MIDDLEWARE, answers them itself and they stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.permissions_policy = permissions_policy(settings.PERMISSIONS_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", self.permissions_policy)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not keeps_private_revalidation(response):
            patch_cache_control(response, private=True, no_store=True)
        return response
