"""/api/models: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from aliases import api, bulk_api, transfer_api
from config.serving import api as serving_api

app_name = "aliases_api"
urlpatterns = [
    path("models", api.AliasCollectionApi.as_view(), name="model-list"),
    # Fixed routes before `<alias>`: GET/PUT/DELETE /api/models/deleted would otherwise reach an alias called
    # "deleted"; that one name is reserved here (its pages still work). Path arguments are
    # `path`/`str`, so a malformed one still reaches these views (a 404 naming it) rather than the detail route's 405.
    path("models/deleted", api.DeletedAliasesApi.as_view(), name="model-deleted"),
    path("models/deleted/<path:alias>/restore", api.DeletedAliasRestoreApi.as_view(), name="model-restore"),
    path("models/<path:alias>/versions", api.AliasVersionsApi.as_view(), name="model-versions"),
    path("models/<path:alias>/versions/<str:n>/revert", api.AliasRevertApi.as_view(), name="model-revert"),
    # Fixed routes before `<alias>`: they reserve the exact paths models/import, models/export and models/bulk (an
    # alias of that name is still reachable in another case, e.g. models/Import, since names ignore case).
    path("models/import", transfer_api.AliasImportApi.as_view(), name="model-import"),
    path("models/export", transfer_api.AliasExportApi.as_view(), name="model-export"),
    path("models/bulk", bulk_api.AliasBulkApi.as_view(), name="model-bulk"),
    # One alias for another runtime (config/serving): before `<alias>`, which would take the whole path.
    path("models/<path:alias>/export/<str:fmt>", serving_api.AliasExportApi.as_view(), name="model-export-one"),
    # `path`: aliases made from model files are named owner/repo:quant, with a slash.
    path("models/<path:alias>", api.AliasDetailApi.as_view(), name="model-detail"),
]
