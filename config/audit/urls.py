from __future__ import annotations

from django.urls import path

from config import converters  # noqa: F401  registers `rowid`
from config.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.AuditListView.as_view(), name="list"),
    path("export.csv", views.AuditExportView.as_view(export_format="csv"), name="export-csv"),
    path("export.json", views.AuditExportView.as_view(export_format="json"), name="export-json"),
    path("<rowid:pk>/", views.AuditDetailView.as_view(), name="detail"),
]
