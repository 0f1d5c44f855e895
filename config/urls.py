from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("aliases/", include("aliases.urls")),
    path("files/", include("modelfiles.urls")),
    path("presets/", include("aliases.presets.urls")),
    path("audit/", include("config.audit.urls")),
    path("serving/", include("config.serving.urls")),
    path("", include("config.health.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
    # /account/tokens/ (everyone's own API tokens) and /users/ (admins).
    path("", include("config.accounts.urls")),
    path("api/", include("aliases.api_urls")),
    path("api/", include("modelfiles.api_urls")),
    path("api/", include("aliases.presets.api_urls")),
    path("api/", include("config.audit.api_urls")),
    path("api/", include("config.serving.api_urls")),
    path("api/", include("config.accounts.api_urls")),
    # The OpenAI-compatible gateway (async views, served by config.asgi under uvicorn).
    path("v1/", include("config.serving.gateway_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # A page for people: signed-out visitors go to the login page like everywhere else (the schema answers 401).
    # The split view serves Swagger UI's start-up script from this URL (?script), not inline: CSP allows it.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html")),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
]

handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"
