from __future__ import annotations

import hashlib
import secrets
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mdk_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def no_control_characters(value: str) -> None:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValidationError("Control characters (newlines, tabs, NUL, …) are not allowed.", code="control_character")


class ApiToken(models.Model):
    """A per-user API key. Only its sha256 is stored: the raw key is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField("label", max_length=64, blank=True, validators=[no_control_characters])
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to tell keys apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this moment the token is refused. Empty: it never expires."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def generate_raw() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class BearerFailureWindow(models.Model):
    """Failed bearer-token attempts from one client address in the current window.

    A table, not a per-process counter, so every web process (gunicorn workers, several machines) shares it.
    One row per address: the window starts with its first failure and the row is reused once it has passed.
    """

    address = models.CharField(max_length=45, unique=True)
    window_started_at = models.DateTimeField(db_index=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "failed API token window"

    def __str__(self) -> str:
        return f"{self.address}: {self.failures} since {self.window_started_at:%Y-%m-%d %H:%M:%S}"


class TablePreference(models.Model):
    """Which optional columns one user hides in one list table, kept server side so the choice follows the user to
    every browser. A row exists only once the user has chosen; until then the table's defaults apply."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="table_preferences")
    table = models.CharField(max_length=64, help_text="The table's key, e.g. 'aliases'.")
    # Hidden rather than shown: a column added later appears for everyone until they hide it.
    hidden_columns = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "table"], name="tablepreference_user_table")]
        verbose_name = "table preference"

    def __str__(self) -> str:
        return f"{self.user} · {self.table}"
