"""/api/models: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from aliases import api

app_name = "aliases_api"
urlpatterns = [
    path("models", api.AliasCollectionApi.as_view(), name="model-list"),
    # `path`: aliases made from model files are named owner/repo:quant, with a slash.
    path("models/<path:alias>", api.AliasDetailApi.as_view(), name="model-detail"),
]
