from __future__ import annotations

from django.urls import path

from config import converters  # noqa: F401  registers `rowid`
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
    path("downloads/<uuid:pk>/pause/", views.DownloadPauseView.as_view(), name="download-pause"),
    path("downloads/<uuid:pk>/resume/", views.DownloadResumeView.as_view(), name="download-resume"),
    path("downloads/<uuid:pk>/move/", views.DownloadMoveView.as_view(), name="download-move"),
    path("downloads/<uuid:pk>/speed/", views.DownloadSpeedView.as_view(), name="download-speed"),
    path("downloads/limits/", views.DownloadLimitsView.as_view(), name="download-limits"),
    path("<rowid:pk>/", views.ModelFileDetailView.as_view(), name="detail"),
    path("<rowid:pk>/delete/", views.ModelFileDeleteView.as_view(), name="delete"),
    path("storage/", views.StorageView.as_view(), name="storage"),
    path("storage/cleanup/", views.CleanupView.as_view(), name="cleanup"),
    path("<rowid:pk>/verify/", views.ModelFileVerifyView.as_view(), name="verify"),
    path("<rowid:pk>/verification/", views.VerificationView.as_view(), name="verification"),
    path("<rowid:pk>/repull/", views.ModelFileRepullView.as_view(), name="repull"),
    path("check-updates/", views.ModelFileCheckUpdatesView.as_view(), name="check-updates"),
    path("<rowid:pk>/update/", views.ModelFileUpdateView.as_view(), name="update"),
]
