from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from config import api


@login_required
def home(request: HttpRequest) -> HttpResponse:
    # The dashboard arrives with the model-file work; until then the alias list is the front page.
    return redirect("aliases:list")


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


def server_error(request: HttpRequest) -> HttpResponse:
    if api.is_api_request(request):
        return api.error_json_response(status=500, message=api.INTERNAL_MESSAGE, code="internal_error")
    return _error_page(
        request,
        500,
        "Something went wrong",
        "The error was logged. Try again; if it persists, tell an admin.",
    )
