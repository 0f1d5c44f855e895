"""/api/serving/...: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from config.serving import api

app_name = "serving_api"
urlpatterns = [
    path("serving/preset.ini", api.PresetApi.as_view(), name="preset"),
    path("serving/models", api.RouterModelsApi.as_view(), name="models"),
    path("serving/models/<path:alias>/load", api.RouterLoadApi.as_view(), name="load"),
    path("serving/models/<path:alias>/unload", api.RouterUnloadApi.as_view(), name="unload"),
]
