"""The webhook's transfer: one JSON event per finished download, POSTed to the configured URL.

No database here; the event is built by services.download_event and sent by tasks.webhook_task, which retries
when this raises WebhookError.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

USER_AGENT = "ModelDesk-webhook/1"


class WebhookError(Exception):
    """The receiver could not be reached or did not take the event (not a 2xx): worth sending again."""


def post_event(url: str, event: dict, *, timeout: float) -> int:
    """POST `event` as JSON to `url`; the receiver's status. Redirects are not followed (a receiver that moved
    says so with its status, and the event is not sent on to where a redirect points)."""
    body = json.dumps(event, separators=(",", ":")).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-ModelDesk-Event": event["event"]},
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"the webhook answered {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookError(f"the webhook could not be reached ({exc})") from exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
