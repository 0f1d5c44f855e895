"""Django admin for model files and downloads: read-only.

Rows are written by the cache scanner and the download services only (pages, API, tasks); an edit here would
bypass them, and deleting a row would not delete the file.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from modelfiles.models import Download, ModelFile


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ModelFile)
class ModelFileAdmin(ReadOnlyAdmin):
    list_display = ("repo", "filename", "short_snapshot", "refs", "size", "modified_at", "present", "scanned_at")
    list_filter = ("present", "repo")
    search_fields = ("repo", "filename", "snapshot", "etag")
    date_hierarchy = "modified_at"
    ordering = ("repo", "filename", "snapshot", "pk")
    list_per_page = 100

    @admin.display(description="Snapshot", ordering="snapshot")
    def short_snapshot(self, obj: ModelFile) -> str:
        return obj.snapshot[:8]


@admin.register(Download)
class DownloadAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "repo",
        "filename",
        "revision",
        "status",
        "progress",
        "attempts",
        "requested_by",
        "error_code",
        "finished_at",
    )
    list_filter = ("status", "error_code", "created_at")
    search_fields = ("id", "repo", "filename", "revision", "commit", "error_message", "requested_by__username")
    list_select_related = ("requested_by",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    list_per_page = 100

    @admin.display(description="Progress")
    def progress(self, obj: Download) -> str:
        percent = obj.percent
        return "—" if percent is None else f"{percent:.0f} %"
