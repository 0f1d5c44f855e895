"""GET /api/serving/preset.ini (the router preset) and GET /api/models/<alias>/export/<format> (one alias for
another runtime). Both answer text; errors use the house error envelope."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.models import Alias
from aliases.selectors import alias_get
from aliases.transfer_api import _IgnoreFormatParam
from config.api import ApiError, ErrorEnvelopeSerializer, ModelPermissions, error_responses
from config.serving.exports import FORMAT_LABELS, FORMATS, alias_export
from config.serving.preset import Unservable
from config.serving.runtime import router_status
from config.serving.services import (
    ROUTER_ACTIONS,
    ServingRefused,
    may_serve,
    preset_current,
    preset_path,
    router_model_action,
)
from config.serving.views import PRESET_FILENAME, text_attachment


class _TextApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()  # GET needs aliases.view_alias (every role)
    content_negotiation_class = _IgnoreFormatParam  # the answer is text whatever the client accepts
    http_method_names = ["get", "head", "options"]


class PresetApi(_TextApi):
    @extend_schema(
        operation_id="serving_preset",
        summary="The llama-server router preset for the local aliases",
        description="An INI file for `llama-server --models-preset FILE`: one section per alias whose file is "
        "local, named by the id the router gives it (the part after the last colon upper-cased), with the model "
        "path and the options the alias sets. Aliases that cannot be served are listed in comments at the end "
        "with the reason. The same text as the file at MODELDESK_LLAMA_PRESET_PATH when that is set.",
        tags=["serving"],
        responses={(200, "text/plain"): OpenApiTypes.STR, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> HttpResponse:
        return text_attachment(preset_current().text, PRESET_FILENAME)


FORMAT_PATH = OpenApiParameter(
    "fmt",
    str,
    OpenApiParameter.PATH,
    enum=list(FORMATS),
    description="; ".join(f"`{name}`: {label}" for name, label in FORMAT_LABELS.items()),
)
ALIAS_PATH = OpenApiParameter("alias", str, OpenApiParameter.PATH, description="The alias name; case does not matter.")


class AliasExportApi(_TextApi):
    @extend_schema(
        operation_id="models_export_one",
        summary="One alias for another runtime",
        description="`llama-server`: the command line that serves the alias (shell-quoted); `ollama`: an Ollama "
        "Modelfile (FROM the local file, PARAMETER lines, TEMPLATE when known); `bodhi`: BodhiApp's alias YAML. "
        "The first two need the alias's file in the local cache (409 otherwise).",
        tags=["models"],
        parameters=[ALIAS_PATH, FORMAT_PATH],
        responses={(200, "text/plain"): OpenApiTypes.STR, **error_responses(401, 403, 404, 409)},
    )
    def get(self, request: Request, alias: str, fmt: str) -> HttpResponse:
        found = alias_get(name=alias)
        if found is None:
            raise ApiError(f"No alias named {alias!r}.", status=404, code="alias_not_found", param="alias")
        if fmt not in FORMATS:
            raise ApiError(
                f"No export format {fmt!r}; use one of {', '.join(FORMATS)}.",
                status=404,
                code="format_not_found",
                param="fmt",
            )
        path = preset_path()
        try:
            export = alias_export(found, fmt, template_dir=path.parent if path else None)
        except Unservable as exc:
            raise ApiError(
                f"{found.alias} cannot be exported as {fmt}: {exc}.", status=409, code="not_servable", param="alias"
            ) from exc
        return text_attachment(export.text, export.filename)


# --- the router's models, load and unload (issue 10, item 3) ------------------------------------------------------

ROUTER_DOWN = {
    502: OpenApiResponse(ErrorEnvelopeSerializer, description="The router answered with an error (`router_error`)."),
    503: OpenApiResponse(
        ErrorEnvelopeSerializer,
        description="The router at MODELDESK_LLAMA_SERVER_URL is not answering (`router_unavailable`).",
    ),
}


class RouterModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The id the router lists (the part after the last colon upper-cased).")
    alias = serializers.CharField(allow_null=True, help_text="The alias served under this id; null if none of ours.")
    state = serializers.CharField(help_text="unloaded, loading, loaded, sleeping or failed (status.value).")
    exit_code = serializers.IntegerField(allow_null=True, help_text="The model process's exit code when failed.")
    args = serializers.ListField(child=serializers.CharField(), help_text="The command line the model runs.")


class RouterModelsSerializer(serializers.Serializer):
    router = serializers.CharField(help_text="MODELDESK_LLAMA_SERVER_URL.")
    data = RouterModelSerializer(many=True)


class RouterActionSerializer(serializers.Serializer):
    alias = serializers.CharField()
    id = serializers.CharField(help_text="The router id the router was asked to load or unload.")
    action = serializers.ChoiceField(choices=ROUTER_ACTIONS)
    model = RouterModelSerializer(allow_null=True, help_text="The router's view right after (null if it is gone).")


def _refused(exc: ServingRefused) -> ApiError:
    return ApiError(exc.message, status=exc.status, code=exc.code, param="alias" if exc.status == 409 else None)


def _status_or_error():
    status = router_status(fresh=True)
    if status is None:
        raise ApiError("No llama-server router is configured (set MODELDESK_LLAMA_SERVER_URL).", status=409,
                       code="router_not_configured")  # fmt: skip
    if not status.reachable:
        raise ApiError(status.note, status=503 if status.unavailable else 502,
                       code="router_unavailable" if status.unavailable else "router_error")  # fmt: skip
    return status


class RouterModelsApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()  # every role reads
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        operation_id="serving_models",
        summary="The router's models and their states, mapped to aliases",
        description="One `GET /models` on the router at MODELDESK_LLAMA_SERVER_URL: each model's id, the alias "
        "served under it, its state (`unloaded`, `loading`, `loaded`, `sleeping`, `failed` with `exit_code`) and "
        "the exact command line it runs. 409 `router_not_configured` without a router; 502/503 when it is down.",
        tags=["serving"],
        responses={200: RouterModelsSerializer, **error_responses(401, 403, 409), **ROUTER_DOWN},
    )
    def get(self, request: Request) -> Response:
        status = _status_or_error()
        return Response({"router": status.url, "data": [model.as_json() for model in status.models]})


class ServingPermission(ModelPermissions):
    """Reading needs aliases.view_alias; loading and unloading, one of SERVE_PERMISSIONS (operators,
    admins)."""

    def has_permission(self, request, view) -> bool:
        if request.method == "POST" and request.user and request.user.is_authenticated:
            return may_serve(request.user)
        return super().has_permission(request, view)


class RouterActionApi(APIView):
    permission_classes = [ServingPermission]
    queryset = Alias.objects.all()
    http_method_names = ["post", "options"]
    action: str = ""

    def act(self, request: Request, alias: str) -> Response:
        found = alias_get(name=alias)
        if found is None:
            raise ApiError(f"No alias named {alias!r}.", status=404, code="alias_not_found", param="alias")
        try:
            model_id = router_model_action(alias=found, action=self.action, by=request.user)
        except ServingRefused as exc:
            raise _refused(exc) from exc
        status = router_status(fresh=True)
        model = status.by_id.get(model_id) if status is not None else None
        body = {"alias": found.alias, "id": model_id, "action": self.action, "model": model and model.as_json()}
        return Response(body)


def _action_schema(action: str, what: str):
    return extend_schema(
        operation_id=f"serving_model_{action}",
        summary=f"{action.capitalize()} an alias on the router",
        description=f"`POST /models/{action}` on the router with the alias's router id: {what} Operators, editors "
        "and admins. 404 `alias_not_found`; 409 `not_served` (not in the preset, e.g. its file is not local, with "
        "the reason), `router_not_configured` or `router_refused` (the router said no, e.g. already loaded); "
        "502 `router_error`, 503 `router_unavailable`. Recorded in the audit log.",
        tags=["serving"],
        parameters=[ALIAS_PATH],
        request=None,
        responses={200: RouterActionSerializer, **error_responses(401, 403, 404, 409), **ROUTER_DOWN},
    )


class RouterLoadApi(RouterActionApi):
    action = "load"

    @_action_schema("load", "the router starts the model's process; it is `loading` until that answers.")
    def post(self, request: Request, alias: str) -> Response:
        return self.act(request, alias)


class RouterUnloadApi(RouterActionApi):
    action = "unload"

    @_action_schema("unload", "the router stops the model's process.")
    def post(self, request: Request, alias: str) -> Response:
        return self.act(request, alias)
