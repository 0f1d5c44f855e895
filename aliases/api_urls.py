"""/api/models: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from aliases import api, transfer_api

app_name = "aliases_api"
urlpatterns = [
    path("models", api.AliasCollectionApi.as_view(), name="model-list"),
    # Fixed routes before `<alias>`: they reserve the exact paths models/import and models/export (an alias of that
    # name is still reachable in another case, e.g. models/Import, since names ignore case).
    path("models/import", transfer_api.AliasImportApi.as_view(), name="model-import"),
    path("models/export", transfer_api.AliasExportApi.as_view(), name="model-export"),
    # `path`: aliases made from model files are named owner/repo:quant, with a slash.
    path("models/<path:alias>", api.AliasDetailApi.as_view(), name="model-detail"),
]
