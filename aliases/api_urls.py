"""/api/models: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from aliases import api

app_name = "aliases_api"
urlpatterns = [
    path("models", api.AliasCollectionApi.as_view(), name="model-list"),
    # `str` takes everything up to the next slash, so names like llama3.1:8b need no escaping.
    path("models/<str:alias>", api.AliasDetailApi.as_view(), name="model-detail"),
]
