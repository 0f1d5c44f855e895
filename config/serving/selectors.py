"""Reads of the serving data that pages share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Min, Sum

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
    """What the gateway answered for the alias `name`: all days, and the users who used the most tokens.

    One query, grouped by user (a team's users, not a table's rows): the totals are the groups' sums. The alias
    page asks for it on every view, and a second query for the totals was a tenth of the page on PostgreSQL."""
    sums = {"requests": Sum("requests"), "prompt": Sum("prompt_tokens"), "completion": Sum("completion_tokens")}
    per_user = list(
        ServingUsage.objects.filter(alias=name).values("user__username").annotate(**sums, since=Min("day")).order_by()
    )
    per_user.sort(key=lambda row: (-(row["prompt"] + row["completion"]), row["user__username"]))  # most tokens first
    return AliasUsage(
        requests=sum(row["requests"] for row in per_user),
        prompt_tokens=sum(row["prompt"] for row in per_user),
        completion_tokens=sum(row["completion"] for row in per_user),
        since=min((row["since"] for row in per_user), default=None),
        top_users=tuple(
            UserUsage(row["user__username"], row["requests"], row["prompt"], row["completion"])
            for row in per_user[:TOP_USERS]
        ),
    )
