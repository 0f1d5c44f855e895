from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One change to anything ModelDesk manages: who, when, what, and the object before and after.

    Rows are only ever added. The actor's name is copied so the entry still says who it was after the user is
    deleted; `object_id` is text because aliases, files, downloads (uuid), users and tokens all land here.
    """

    class Kind(models.TextChoices):
        ALIAS = "alias"
        MODELFILE = "modelfile"
        DOWNLOAD = "download"
        USER = "user"
        ROLE = "role"
        TOKEN = "token"
        PRESET = "preset"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Empty for the system (workers, scans).")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    action = models.CharField(max_length=32, help_text="create, update, delete, request, cancel, retry, …")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=255, blank=True, help_text="A readable name for the object.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["kind", "object_id"], name="audit_kind_object"),
            models.Index(fields=["actor_name", "at"], name="audit_actor_at"),
            # The page's action filter lists the distinct actions: an index keeps that off a full table scan.
            models.Index(fields=["action"], name="audit_action"),
        ]

    def __str__(self) -> str:
        who = self.actor_name or "system"
        return f"{who} {self.action} {self.kind} {self.object_repr}"
