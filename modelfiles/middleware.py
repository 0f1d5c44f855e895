"""Notices (issue 11, item 5): whoever asked for a pull hears how it ended on the next page they open."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse

from config.formatting import human_size
from modelfiles.models import Download
from modelfiles.services import download_notices_take, pull_set_note

# Not pages: the API and the gateway answer scripts, and static files never reach here (WhiteNoise).
NOT_PAGES = ("/api/", "/v1/")


class DownloadNoticeMiddleware:
    """On a page a signed-in person opens (a GET, not an htmx poll or swap, not the API), a message for each pull
    of theirs that completed or failed since they were last told; a redirect carries it to the next page.

    One indexed query per page when nothing is pending (the flag is set by the worker as a download ends)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "GET"
            and request.user.is_authenticated
            and not getattr(request, "htmx", False)
            and not request.path.startswith(NOT_PAGES)
        ):
            for download in download_notices_take(user=request.user):
                tell(request, download)
        return self.get_response(request)


def tell(request: HttpRequest, download: Download) -> None:
    name = f"{download.repo}/{download.filename}@{download.revision}"
    name += pull_set_note(parts=download.parts, size=download.bytes_total)
    if download.status == Download.Status.COMPLETED:
        checked = f", {download.verified} verified" if download.verified else ""
        size = human_size(download.bytes_total) if download.bytes_total is not None else "size unknown"
        messages.success(request, f"Your pull of {name} completed ({size}{checked}); it is in the model files.")
    elif download.status == Download.Status.FAILED:
        messages.error(request, f"Your pull of {name} failed: {download.error_message}")
