from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from config.accounts.roles import role_of


def user_role(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's role for the nav, looked up once per request however many templates render."""

    def lookup() -> str:
        if not hasattr(request, "_modeldesk_role"):
            user = getattr(request, "user", None)
            request._modeldesk_role = (role_of(user) if user is not None else None) or ""
        return request._modeldesk_role

    return {"user_role": SimpleLazyObject(lookup)}
