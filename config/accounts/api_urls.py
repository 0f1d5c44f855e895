"""/api/tokens: paths without trailing slashes, like the rest of the API."""

from __future__ import annotations

from django.urls import path

from config import converters  # noqa: F401  registers `rowid`
from config.accounts import api

app_name = "accounts_api"
urlpatterns = [
    path("tokens", api.ApiTokenCollectionApi.as_view(), name="token-list"),
    path("tokens/<rowid:token_id>", api.ApiTokenDetailApi.as_view(), name="token-detail"),
]
