from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from config.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: entries are only ever added, by the services (config.audit.services.audit_record)."""

    list_display = ("at", "actor_name", "kind", "action", "object_repr")
    list_filter = ("kind", "action")
    search_fields = ("object_repr", "object_id", "actor_name")
    date_hierarchy = "at"
    readonly_fields = ("at", "actor", "actor_name", "kind", "action", "object_id", "object_repr", "before", "after")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
