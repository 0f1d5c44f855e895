from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url


class HtmxLoginRedirectMiddleware:
    """A signed-out htmx request (an expired session during a search or a progress poll) reloads the whole page
    on the login page, which then brings the visitor back to the page they were on.

    Without this the browser would follow the redirect inside the XHR and htmx would swap the login form into
    the table or the progress section, with `next` pointing at the fragment's URL.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or response.status_code not in (301, 302, 303, 307, 308):
            return response
        login_path = urlsplit(resolve_url(settings.LOGIN_URL)).path
        if urlsplit(response.get("Location", "")).path != login_path:
            return response
        # django-htmx gives the page's path only when it is on this site.
        page = htmx.current_url_abs_path or resolve_url(settings.LOGIN_REDIRECT_URL)
        location = redirect_to_login(page)["Location"]
        redirect = HttpResponse(status=204)
        redirect["HX-Redirect"] = location
        return redirect
