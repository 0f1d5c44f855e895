"""/api/presets: its own prefix, so no alias name is reserved under /api/models."""

from __future__ import annotations

from django.urls import path

from aliases.presets import api

app_name = "presets_api"
urlpatterns = [
    path("presets", api.PresetCollectionApi.as_view(), name="preset-list"),
    path("presets/<str:preset>", api.PresetDetailApi.as_view(), name="preset-detail"),
]
