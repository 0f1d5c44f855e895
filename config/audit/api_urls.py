"""/api/audit: the path exactly as DESIGN.md writes it, without a trailing slash."""

from __future__ import annotations

from django.urls import path

from config.audit import api

app_name = "audit_api"
urlpatterns = [
    path("audit", api.AuditListApi.as_view(), name="audit-list"),
]
