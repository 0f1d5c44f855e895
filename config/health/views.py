"""`/healthz` (this process answers) and `/readyz` (it can do its work), for load balancers, process managers and
`make run`. No sign-in, nothing secret: component names, ok or down, and a short reason."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config.health.checks import readiness


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ready = all(check.ok for check in checks)
    response = JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": [check.as_dict() for check in checks]},
        status=200 if ready else 503,
    )
    # A load balancer asks every few seconds: a 503 here is an answer, not a server error to log each time.
    response._has_been_logged = True
    return response
