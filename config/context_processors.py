from __future__ import annotations

from django.http import HttpRequest

from config.accounts.roles import role_of


def user_role(request: HttpRequest) -> dict[str, str | None]:
    user = getattr(request, "user", None)
    return {"user_role": role_of(user) if user is not None else None}
