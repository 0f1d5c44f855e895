from __future__ import annotations

from django.conf import settings
from django.db import models


class ServingUsage(models.Model):
    """Requests and tokens answered through the gateway (/v1/), per alias, user and day.

    Keyed by the alias's name rather than a foreign key: the counts of an alias that was deleted stay readable,
    and one that is created again under the same name carries on from them. Counted from the router's `usage`
    (prompt_tokens, completion_tokens); a request whose answer carried none counts as a request with 0 tokens.
    """

    alias = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="serving_usage")
    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alias", "user", "day"], name="serving_usage_alias_user_day")]
        ordering = ["-day", "alias", "pk"]
        verbose_name = "gateway usage"
        verbose_name_plural = "gateway usage"

    def __str__(self) -> str:
        return f"{self.alias} / {self.user} / {self.day}"
