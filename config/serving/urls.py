from __future__ import annotations

from django.urls import path

from config.serving import views

app_name = "serving"

urlpatterns = [
    path("", views.ServingView.as_view(), name="index"),
    path("preset.ini", views.PresetDownloadView.as_view(), name="preset"),
    # The format first: alias names hold '/' (owner/repo:quant), so the name takes the rest of the path.
    path("export/<str:fmt>/<path:name>", views.AliasExportView.as_view(), name="export"),
    path("load/<path:name>", views.RouterActionView.as_view(), {"action": "load"}, name="load"),
    path("unload/<path:name>", views.RouterActionView.as_view(), {"action": "unload"}, name="unload"),
]
