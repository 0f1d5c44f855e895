"""/api/serving/...: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from config.serving import api

app_name = "serving_api"
urlpatterns = [
    path("serving/preset.ini", api.PresetApi.as_view(), name="preset"),
]
