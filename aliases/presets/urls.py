from __future__ import annotations

from django.urls import path

from aliases.presets import views

app_name = "presets"

# Preset names follow the alias name rule (no slash, starting with a letter or digit), so "-/new/" is never a name.
urlpatterns = [
    path("", views.PresetListView.as_view(), name="list"),
    path("-/new/", views.PresetCreateView.as_view(), name="create"),
    path("<str:preset>/edit/", views.PresetEditView.as_view(), name="edit"),
    path("<str:preset>/delete/", views.PresetDeleteView.as_view(), name="delete"),
    path("<str:preset>/form-values/", views.PresetFormValuesView.as_view(), name="form-values"),
    path("<str:preset>/", views.PresetDetailView.as_view(), name="detail"),
]
