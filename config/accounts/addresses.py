"""The client address that sign-in lockouts and the API token throttle count against.

REMOTE_ADDR by default: it is the only address a client cannot choose. Behind reverse proxies set
CLIENT_IP_PROXY_COUNT to how many of them append to X-Forwarded-For; the address is then the one the outermost
of our proxies saw, and whatever a client wrote to the left of it in the header is ignored (it could be anything).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.CLIENT_IP_PROXY_COUNT
    if proxies > 0:
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        # Fewer hops than proxies: the request did not come through all of them, so the header proves nothing.
        if len(hops) >= proxies:
            forwarded = _valid(hops[-proxies])
            if forwarded is not None:
                return forwarded
    return _valid(remote) or "0.0.0.0"
