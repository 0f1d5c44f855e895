"""Read queries of the audit log, shared by the admin page, its exports and `GET /api/audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from config.audit.models import AuditEntry
from config.search import text_search

# Usernames cannot hold a colon (Django's username validator), so this never names a real user.
SYSTEM_ACTOR = ":system"
SEARCH_FIELDS = ("object_repr", "object_id")


def audit_search(queryset: QuerySet[AuditEntry], text: str) -> QuerySet[AuditEntry]:
    """Case-insensitive substring match on the object's name or id."""
    return text_search(queryset, SEARCH_FIELDS, text)


def audit_filter_actor(queryset: QuerySet[AuditEntry], actor: str) -> QuerySet[AuditEntry]:
    """Entries by one user (by name, ignoring case: the name is kept after the user is deleted), or by the
    system (`SYSTEM_ACTOR`)."""
    if not actor:
        return queryset
    if actor == SYSTEM_ACTOR:
        return queryset.filter(actor_name="")
    return queryset.filter(actor_name__iexact=actor)


def audit_list(
    *,
    actor: str = "",
    kind: str = "",
    action: str = "",
    object_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    search: str = "",
) -> QuerySet[AuditEntry]:
    """Entries matching every filter given; `since` is inclusive, `until` exclusive."""
    queryset = audit_filter_actor(AuditEntry.objects.all(), actor)
    if kind:
        queryset = queryset.filter(kind=kind)
    if action:
        queryset = queryset.filter(action=action)
    if object_id:
        queryset = queryset.filter(object_id=object_id)
    if since is not None:
        queryset = queryset.filter(at__gte=since)
    if until is not None:
        queryset = queryset.filter(at__lt=until)
    return audit_search(queryset, search)


def audit_actor_names() -> list[str]:
    """Everyone who ever changed something, for the actor filter (one query, however long the log)."""
    names = AuditEntry.objects.exclude(actor_name="").values_list("actor_name", flat=True)
    return list(names.order_by("actor_name").distinct())


def audit_action_names() -> list[str]:
    return list(AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct())


def audit_entry_data(entry: AuditEntry) -> dict[str, Any]:
    """An entry as plain data: the shape of the API's rows and of the JSON and CSV exports."""
    return {
        "id": entry.pk,
        "at": entry.at,
        "actor": entry.actor_name or None,
        "kind": entry.kind,
        "action": entry.action,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "before": entry.before,
        "after": entry.after,
    }
