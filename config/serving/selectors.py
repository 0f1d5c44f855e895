"""Reads of the serving data that pages share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import F, Min, Sum

from config.serving.models import ServingUsage

TOP_USERS = 5


@dataclass(frozen=True)
class UserUsage:
    username: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class AliasUsage:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    since: dt.date | None  # the first day counted
    top_users: tuple[UserUsage, ...]


def alias_usage(*, name: str) -> AliasUsage:
    """What the gateway answered for the alias `name`: all days, and the users who used the most tokens (two
    queries)."""
    rows = ServingUsage.objects.filter(alias=name)
    sums = {"requests": Sum("requests"), "prompt": Sum("prompt_tokens"), "completion": Sum("completion_tokens")}
    total = rows.aggregate(**sums, since=Min("day"))
    top = (
        rows.values("user__username")
        .annotate(**sums)
        .order_by((F("prompt") + F("completion")).desc(), "user__username")[:TOP_USERS]
    )
    return AliasUsage(
        requests=total["requests"] or 0,
        prompt_tokens=total["prompt"] or 0,
        completion_tokens=total["completion"] or 0,
        since=total["since"],
        top_users=tuple(
            UserUsage(row["user__username"], row["requests"], row["prompt"], row["completion"]) for row in top
        ),
    )
