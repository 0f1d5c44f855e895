"""The serving page (the preset and why some aliases are not in it), its download, and one alias's exports."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from aliases.selectors import alias_get
from config.mixins import RoleRequiredMixin
from config.serving.exports import FORMATS, alias_export
from config.serving.preset import Unservable
from config.serving.runtime import router_status
from config.serving.services import (
    ROUTER_ACTIONS,
    ServingRefused,
    may_serve,
    preset_current,
    preset_path,
    router_model_action,
    router_url,
)
from config.tables import safe_next

PRESET_FILENAME = "modeldesk-preset.ini"


def text_attachment(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ServingView(RoleRequiredMixin, View):
    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        context = {
            "preset": preset_current(),
            "preset_path": preset_path(),
            "router_url": router_url(),
            "router": router_status(),
            "may_serve": may_serve(request.user),
        }
        return render(request, "serving/serving.html", context)


class PresetDownloadView(RoleRequiredMixin, View):
    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        return text_attachment(preset_current().text, PRESET_FILENAME)


class AliasExportView(RoleRequiredMixin, View):
    """One alias in one format, as a file (the alias page's "Run elsewhere" links)."""

    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, fmt: str, name: str) -> HttpResponse:
        alias = alias_get(name=name)
        if alias is None or fmt not in FORMATS:
            raise Http404("No such alias or export format.")
        path = preset_path()
        try:
            export = alias_export(alias, fmt, template_dir=path.parent if path else None)
        except Unservable as exc:
            return HttpResponse(f"{alias.alias} cannot be exported as {fmt}: {exc}\n", status=409,
                                content_type="text/plain; charset=utf-8")  # fmt: skip
        return text_attachment(export.text, export.filename)


class RouterActionView(RoleRequiredMixin, View):
    """Load or unload an alias on the router (the alias page's and the serving page's buttons), then back."""

    http_method_names = ["post", "options"]

    def has_permission(self) -> bool:
        return may_serve(self.request.user)

    def post(self, request: HttpRequest, action: str, name: str) -> HttpResponse:
        alias = alias_get(name=name)
        if alias is None or action not in ROUTER_ACTIONS:
            raise Http404("No such alias or action.")
        try:
            model_id = router_model_action(alias=alias, action=action, by=request.user)
        except ServingRefused as exc:
            messages.error(request, exc.message)
        else:
            done = "Loading" if action == "load" else "Unloaded"
            messages.success(request, f"{done} {alias.alias} on the router (as {model_id}).")
        return HttpResponseRedirect(safe_next(request) or reverse("aliases:detail", args=[alias.alias]))
