from __future__ import annotations

import functools
import logging
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

from config import api
from config.accounts.forms import SignInForm
from config.dashboard import dashboard_summary, dashboard_summary_html
from config.health.selectors import workers_seen
from modelfiles.views import active_context

logger = logging.getLogger(__name__)


@login_required
@require_safe  # under login_required: signed-out visitors go to the login page whatever the method
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard. Its summary reloads alone (an htmx GET of this URL) when the active downloads change."""
    htmx = request.htmx
    if htmx and not htmx.history_restore_request and settings.CACHE_SHARED:
        response = HttpResponse(dashboard_summary_html(request))  # rendered once for the crowd (config/dashboard.py)
    elif htmx and not htmx.history_restore_request:
        response = render(request, "dashboard/partials/_summary.html", dashboard_summary(request))
    else:
        context = dashboard_summary(request)
        context.update(active_context(request, next_url=request.get_full_path()), workers=workers_seen())
        response = render(request, "dashboard.html", context)
    # The same URL answers with a fragment or a page depending on these headers; caches must tell them apart.
    patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
    return response


class SignInView(auth_views.LoginView):
    """The login page. A sign-in always starts a new session key, whatever session the browser came with."""

    authentication_form = SignInForm

    @property
    def redirect_authenticated_user(self) -> bool:
        # Only a GET of the page sends a signed-in visitor on. A POST used to be answered the same way: the
        # credentials were ignored and the browser kept the session (and key) it came with, even when they named
        # another user. A POST is now always a sign-in.
        return self.request.method in ("GET", "HEAD")

    def form_valid(self, form):
        # Django's login() keeps the key of a session that already belongs to the same user; a new key on every
        # sign-in means a session key seen before signing in (a fixated or leaked cookie) is never signed in.
        self.request.session.cycle_key()
        response = super().form_valid(form)
        messages.success(self.request, f"Signed in as {form.get_user().get_username()}.")
        return response


class SignOutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        # Added after the session was flushed, so it travels in the fresh session to the login page.
        messages.info(request, "You are signed out.")
        return response


def _error_page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    return render(request, "error.html", {"status": status, "title": title, "text": text}, status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(
        request,
        403,
        "You can't do that",
        "Your role does not allow this action. Ask an admin if you need it.",
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if api.is_api_request(request):
        return api.error_json_response(
            status=404, message="There is no API endpoint at this address.", code="not_found"
        )
    return _error_page(request, 404, "Not found", "There is nothing at this address. It may have been deleted.")


SERVER_ERROR_TITLE = "Something went wrong"
SERVER_ERROR_TEXT = "The error was logged. Try again; if it persists, tell an admin."


def server_error(request: HttpRequest) -> HttpResponse:
    if api.is_api_request(request):
        return api.error_json_response(status=500, message=api.INTERNAL_MESSAGE, code="internal_error")
    try:
        return _error_page(request, 500, SERVER_ERROR_TITLE, SERVER_ERROR_TEXT)
    except Exception:
        # The page with the nav needs the session and the database, which may be what failed: fall back to the
        # same page without anything that needs them.
        logger.exception("the 500 page could not be rendered with its nav; sending the plain one")
        context = {"status": 500, "title": SERVER_ERROR_TITLE, "text": SERVER_ERROR_TEXT}
        return HttpResponse(render_to_string("error.html", context), status=500)


@functools.cache
def _favicon_bytes() -> bytes:
    return (Path(settings.BASE_DIR) / "static" / "img" / "favicon.ico").read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on pages that name no icon (the API's JSON, the admin): without it every
    such visit logged a 404. Read once per process."""
    response = HttpResponse(_favicon_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
