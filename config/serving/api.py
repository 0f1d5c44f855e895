"""GET /api/serving/preset.ini (the router preset) and GET /api/models/<alias>/export/<format> (one alias for
another runtime). Both answer text; errors use the house error envelope."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from aliases.models import Alias
from aliases.selectors import alias_get
from aliases.transfer_api import _IgnoreFormatParam
from config.api import ApiError, ModelPermissions, error_responses
from config.serving.exports import FORMAT_LABELS, FORMATS, alias_export
from config.serving.preset import Unservable
from config.serving.services import preset_current, preset_path
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
