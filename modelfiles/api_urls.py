"""/api/modelfiles: paths exactly as DESIGN.md writes them, without trailing slashes."""

from __future__ import annotations

from django.urls import path

from modelfiles import api

app_name = "modelfiles_api"
urlpatterns = [
    path("modelfiles", api.ModelFileListApi.as_view(), name="modelfile-list"),
    path("modelfiles/pull", api.PullApi.as_view(), name="pull"),
    path("modelfiles/scan", api.ScanApi.as_view(), name="scan"),
    path("modelfiles/check-updates", api.CheckUpdatesApi.as_view(), name="check-updates"),
    path("modelfiles/status", api.DownloadListApi.as_view(), name="download-list"),
    # `str`, not `uuid`: an id that is not a uuid gets the API's 404 envelope, not the generic page.
    path("modelfiles/status/<str:download_id>", api.DownloadDetailApi.as_view(), name="download-detail"),
    path("modelfiles/status/<str:download_id>/cancel", api.DownloadCancelApi.as_view(), name="download-cancel"),
    path("modelfiles/status/<str:download_id>/retry", api.DownloadRetryApi.as_view(), name="download-retry"),
    path("modelfiles/status/<str:download_id>/pause", api.DownloadPauseApi.as_view(), name="download-pause"),
    path("modelfiles/status/<str:download_id>/resume", api.DownloadResumeApi.as_view(), name="download-resume"),
    path("modelfiles/status/<str:download_id>/move", api.DownloadMoveApi.as_view(), name="download-move"),
    path("modelfiles/status/<str:download_id>/speed", api.DownloadSpeedApi.as_view(), name="download-speed"),
    path("modelfiles/limits", api.DownloadLimitsApi.as_view(), name="limits"),
    # After status/...: a download id such as "verify" must never reach a model file's view.
    path("modelfiles/<str:modelfile_id>/verify", api.ModelFileVerifyApi.as_view(), name="modelfile-verify"),
    path("modelfiles/<str:modelfile_id>/update", api.ModelFileUpdateApi.as_view(), name="modelfile-update"),
    path("modelfiles/<int:modelfile_id>", api.ModelFileDeleteApi.as_view(), name="modelfile-delete"),
]
