from __future__ import annotations

from django.urls import path

from aliases import views

app_name = "aliases"

# Alias names start with a letter or digit, so "-/new/" can never be mistaken for an alias's own page
# (an alias may well be called "new").
urlpatterns = [
    path("", views.AliasListView.as_view(), name="list"),
    path("-/new/", views.AliasCreateView.as_view(), name="create"),
    path("<str:name>/", views.AliasDetailView.as_view(), name="detail"),
    path("<str:name>/edit/", views.AliasEditView.as_view(), name="edit"),
    path("<str:name>/delete/", views.AliasDeleteView.as_view(), name="delete"),
    path("<str:name>/duplicate/", views.AliasDuplicateView.as_view(), name="duplicate"),
]
