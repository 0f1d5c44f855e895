from __future__ import annotations

from django.urls import path

from modelfiles import views

app_name = "modelfiles"

urlpatterns = [
    path("", views.ModelFileListView.as_view(), name="list"),
    path("rescan/", views.ModelFileRescanView.as_view(), name="rescan"),
    path("pull/", views.PullView.as_view(), name="pull"),
    path("pull/files/", views.RepoFilesView.as_view(), name="pull-files"),
    path("downloads/", views.DownloadListView.as_view(), name="downloads"),
    path("downloads/active/", views.ActiveDownloadsView.as_view(), name="downloads-active"),
    path("downloads/<uuid:pk>/cancel/", views.DownloadCancelView.as_view(), name="download-cancel"),
    path("downloads/<uuid:pk>/retry/", views.DownloadRetryView.as_view(), name="download-retry"),
    path("<int:pk>/verify/", views.ModelFileVerifyView.as_view(), name="verify"),
    path("<int:pk>/verification/", views.VerificationView.as_view(), name="verification"),
    path("<int:pk>/repull/", views.ModelFileRepullView.as_view(), name="repull"),
    path("check-updates/", views.ModelFileCheckUpdatesView.as_view(), name="check-updates"),
    path("<int:pk>/update/", views.ModelFileUpdateView.as_view(), name="update"),
]
