from __future__ import annotations

from django.urls import path

from aliases import bulk_views, history_views, import_views, views

app_name = "aliases"

# Alias names start with a letter or digit, so "-/new/" can never be mistaken for an alias's own page
# (an alias may well be called "new").
# Names of aliases made from model files hold a slash (owner/repo:quant), hence `path`; the action routes come
# before the detail route so that ".../edit/" is never read as part of a name.
urlpatterns = [
    path("", views.AliasListView.as_view(), name="list"),
    path("-/new/", views.AliasCreateView.as_view(), name="create"),
    path("-/import/", import_views.AliasImportView.as_view(), name="import"),
    path("-/export/", import_views.AliasExportView.as_view(), name="export"),
    path("-/bulk/", bulk_views.AliasBulkView.as_view(), name="bulk"),
    path("-/columns/", views.AliasColumnsView.as_view(), name="columns"),
    path("-/model-options/", views.ModelOptionsView.as_view(), name="model-options"),
    path("-/deleted/", history_views.DeletedAliasListView.as_view(), name="deleted"),
    path("-/deleted/<str:name>/restore/", history_views.DeletedAliasRestoreView.as_view(), name="restore"),
    path("<path:name>/history/", history_views.AliasHistoryView.as_view(), name="history"),
    path("<path:name>/history/<int:version>/revert/", history_views.AliasRevertView.as_view(), name="revert"),
    path("<path:name>/edit/", views.AliasEditView.as_view(), name="edit"),
    path("<path:name>/delete/", views.AliasDeleteView.as_view(), name="delete"),
    path("<path:name>/duplicate/", views.AliasDuplicateView.as_view(), name="duplicate"),
    path("<path:name>/", views.AliasDetailView.as_view(), name="detail"),
]
