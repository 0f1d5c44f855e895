"""`GET /api/audit`: the audit log as JSON, for admins (DESIGN.md, "JSON API").

The conventions of config/api.py: ``ListQuery`` paging, sorting and search, the list envelope, the error
envelope. The filters narrow the same way the admin page does (config/audit/selectors.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db.models import F
from django.db.models.functions import Lower
from django.http import QueryDict
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApiError, ListQuery, ModelPermissions, error_responses, list_envelope_serializer
from config.audit.models import AuditEntry
from config.audit.selectors import SEARCH_FIELDS, SYSTEM_ACTOR, audit_entry_data, audit_list

AUDIT_LIST_QUERY = ListQuery(
    sorts={
        "at": F("at"),
        "actor": Lower("actor_name"),
        "kind": F("kind"),
        "action": F("action"),
        "object_id": F("object_id"),
        "object_repr": Lower("object_repr"),
    },
    default_sort="at",
    default_sort_order="desc",
    search_help=f"Case-insensitive text to find in {', '.join(SEARCH_FIELDS)}.",
)
# Text filters: any printable text up to the column's length (control characters can never match a stored value).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_PATTERN = "^[^\\u0000-\\u001F\\u007F]{0,%d}$"
_TEXT_FILTERS = {"actor": 150, "action": 32, "object_id": 64}
QUERY = OpenApiParameter.QUERY
FILTER_PARAMETERS = [
    OpenApiParameter(
        "actor",
        str,
        QUERY,
        pattern=_TEXT_PATTERN % _TEXT_FILTERS["actor"],
        description=f"Only changes by this username (case-insensitive; kept after the user is deleted). "
        f"`{SYSTEM_ACTOR}` selects the system's changes (workers, scans), whose `actor` is null.",
    ),
    OpenApiParameter("kind", str, QUERY, enum=list(AuditEntry.Kind.values), description="Only this kind of object."),
    OpenApiParameter(
        "action",
        str,
        QUERY,
        pattern=_TEXT_PATTERN % _TEXT_FILTERS["action"],
        description="Only this action, exactly: create, update, delete, request, cancel, retry, scan, …",
    ),
    OpenApiParameter(
        "object_id",
        str,
        QUERY,
        pattern=_TEXT_PATTERN % _TEXT_FILTERS["object_id"],
        description="Only entries about this object id, exactly (an alias's or user's number, a download's uuid, "
        "a repo for scans). Combine with `kind`.",
    ),
    OpenApiParameter(
        "since",
        OpenApiTypes.DATETIME,
        QUERY,
        description="Only entries at or after this ISO 8601 time (no offset means UTC).",
    ),
    OpenApiParameter(
        "until",
        OpenApiTypes.DATETIME,
        QUERY,
        description="Only entries before this ISO 8601 time (no offset means UTC); `since` ≤ entries < `until`.",
    ),
]


class AuditEntrySerializer(serializers.Serializer):
    """One recorded change: who (`actor`, null for the system), when, what, and the object before and after."""

    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True, help_text="Username of who made the change; null: the system.")
    kind = serializers.ChoiceField(choices=AuditEntry.Kind.choices)
    action = serializers.CharField(help_text="create, update, delete, request, cancel, retry, scan, …")
    object_id = serializers.CharField(help_text="The object's id as text; may be empty (a scan of every repo).")
    object_repr = serializers.CharField(help_text="A readable name of the object when the change was made.")
    before = serializers.DictField(allow_null=True, help_text="The object's values before; null for a create.")
    after = serializers.DictField(allow_null=True, help_text="The object's values after; null for a delete.")


def _bad(name: str, message: str) -> ApiError:
    return ApiError(message, status=400, code="invalid_parameter", param=name)


def _time(query: QueryDict, name: str) -> datetime | None:
    raw = query.get(name, "")
    if raw == "":
        return None
    problem = f"{name} must be an ISO 8601 date and time such as 2026-01-31T12:00:00Z (got {raw!r})."
    try:
        value = parse_datetime(raw) if len(raw) <= 64 else None
    except ValueError:  # well-formed but impossible, like February 30
        value = None
    if value is None:
        raise _bad(name, problem)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # the first or last hours of the calendar, shifted out of it
        raise _bad(name, problem) from None


def audit_filters(query: QueryDict) -> dict:
    """The filter parameters, checked: anything the schema would refuse is a 400 naming the parameter."""
    filters: dict = {}
    for name, limit in _TEXT_FILTERS.items():
        value = query.get(name, "")
        if len(value) > limit or _CONTROL.search(value):
            raise _bad(name, f"{name} must be at most {limit} characters, without control characters.")
        filters[name] = value
    kind = query.get("kind", "")
    if kind and kind not in AuditEntry.Kind.values:
        raise _bad("kind", f"Unknown kind {kind!r}; use one of: {', '.join(AuditEntry.Kind.values)}.")
    filters["kind"] = kind
    filters["since"] = _time(query, "since")
    filters["until"] = _time(query, "until")
    return filters


class AuditListApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = AuditEntry.objects.all()  # names the model for ModelPermissions: audit.view_auditentry (admins)

    @extend_schema(
        operation_id="audit_list",
        summary="The audit log, newest first (admins)",
        description="Every change to aliases, model files, downloads, users, roles and tokens. Filters combine "
        "(all must match).",
        tags=["audit"],
        parameters=[*AUDIT_LIST_QUERY.openapi_parameters(), *FILTER_PARAMETERS],
        responses={200: list_envelope_serializer(AuditEntrySerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = AUDIT_LIST_QUERY.parse(request.query_params)
        filters = audit_filters(request.query_params)
        page = AUDIT_LIST_QUERY.page(audit_list(search=params.search, **filters), params)
        data = AuditEntrySerializer([audit_entry_data(entry) for entry in page.items], many=True).data
        return Response(page.envelope(data))
