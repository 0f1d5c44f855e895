"""Reads of per-user account data shared by pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from config.accounts.models import TablePreference


def tablepreference_hidden(*, user: AbstractBaseUser, table: str) -> list[str] | None:
    """The columns `user` chose to hide in `table`, or None while they never chose (the table's defaults apply)."""
    if not user.is_authenticated:
        return None
    hidden = TablePreference.objects.filter(user=user, table=table).values_list("hidden_columns", flat=True).first()
    return None if hidden is None else list(hidden)
