from __future__ import annotations

from django.contrib import admin

from config.accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "expires_at"]
    list_filter = ["user"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "expires_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at"]

    def has_add_permission(self, request) -> bool:
        # Keys are made on the My API tokens page or by `manage.py apitoken`, which show the raw key once.
        return False
