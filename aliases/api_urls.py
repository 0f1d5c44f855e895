"""/api/models: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from aliases import api

app_name = "aliases_api"
urlpatterns = [
    path("models", api.AliasCollectionApi.as_view(), name="model-list"),
    # Fixed routes before `<alias>`: GET/PUT/DELETE /api/models/deleted would otherwise reach an alias called
    # "deleted"; that one name is reserved here (its pages still work). Restore takes user alias names (no slash).
    path("models/deleted", api.DeletedAliasesApi.as_view(), name="model-deleted"),
    path("models/deleted/<str:alias>/restore", api.DeletedAliasRestoreApi.as_view(), name="model-restore"),
    path("models/<path:alias>/versions", api.AliasVersionsApi.as_view(), name="model-versions"),
    path("models/<path:alias>/versions/<int:n>/revert", api.AliasRevertApi.as_view(), name="model-revert"),
    # `path`: aliases made from model files are named owner/repo:quant, with a slash.
    path("models/<path:alias>", api.AliasDetailApi.as_view(), name="model-detail"),
]
