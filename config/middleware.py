from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render, resolve_url
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, with a file's body read in a worker thread, a block at a time, when served under ASGI (uvicorn).

    WhiteNoise answers with a FileResponse over a plain file; under ASGI Django would warn about the synchronous
    iterator and read the whole file into memory before sending a byte of it.
    """

    @staticmethod
    def serve(static_file, request: HttpRequest) -> HttpResponse:
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest):
            # A HEAD (or 304) answer has no file: an empty body, asynchronously too.
            response.streaming_content = _blocks_in_thread(response, response.file_to_stream)
        return response


async def _blocks_in_thread(response: FileResponse, file) -> AsyncIterator[bytes]:
    if file is None:
        return
    read = sync_to_async(file.read, thread_sensitive=False)
    # block_size is read here, not when the response is made: Django's ASGI handler raises it after the view.
    while chunk := await read(response.block_size):
        yield chunk


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


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _nul_param(query: QueryDict) -> str | None:
    """The first parameter whose name or value holds a NUL (its name printable, for the error's `param`)."""
    for key, values in query.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return key.replace("\x00", "")
    return None


class RequestLimitsMiddleware:
    """Refuses what no view should see, before any view or the database sees it.

    - a body over DATA_UPLOAD_MAX_MEMORY_SIZE, by its Content-Length: 413, without reading it (Django's own check
      only covers `request.body` and forms, and answers 400);
    - NUL in the path, the query string or a form body: 400. PostgreSQL refuses NUL in text with an error (a 500)
      and SQLite stores it, so the check is ours rather than the database's.

    API requests get the error envelope, pages the error page. Placed after the message middleware so that page
    can render with the nav.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return self._too_large(request, limit)
        try:
            refused = "\x00" in request.path_info or _nul_param(request.GET) is not None or self._form_has_nul(request)
        except RequestDataTooBig:
            return self._too_large(request, limit or 0)
        except (SuspiciousOperation, MultiPartParserError):
            # Too many fields, a broken multipart body: Django's own 400, with our page or envelope.
            return self._refuse(request, "The request could not be read.", code="bad_request")
        if refused:
            param = None if "\x00" in request.path_info else _nul_param(request.GET)
            return self._refuse(
                request, "NUL characters are not allowed in addresses or values.", code="nul_character", param=param
            )
        return self.get_response(request)

    @staticmethod
    def _form_has_nul(request: HttpRequest) -> bool:
        if request.method not in ("POST", "PUT", "PATCH"):
            return False
        from config.api import is_api_request

        # The API reads only JSON (a form body there is a 415), and every text value in it goes through the
        # validators; reading request.POST here would hand DRF the parsed form instead.
        if request.content_type not in _FORM_TYPES or is_api_request(request):
            return False
        return _nul_param(request.POST) is not None

    def _too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        from config import api
        from config.api_parsers import body_too_large_message

        message = body_too_large_message(limit)
        if api.is_api_request(request):
            return api.error_json_response(status=413, message=message, code="request_too_large")
        return self._page(request, 413, "Too large", f"{message} Nothing was saved.")

    def _refuse(self, request: HttpRequest, message: str, *, code: str, param: str | None = None) -> HttpResponse:
        from config import api

        if api.is_api_request(request):
            return api.error_json_response(status=400, message=message, code=code, param=param)
        return self._page(request, 400, "Bad request", f"{message} Nothing was saved.")

    @staticmethod
    def _page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
        # request.path may itself hold the NUL: the page shows nothing of the request.
        return render(request, "error.html", {"status": status, "title": title, "text": text}, status=status)
