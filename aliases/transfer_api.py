"""POST /api/models/import and GET /api/models/export (issue 9, item 3). The formats live in aliases/transfer.py."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.filters import AliasFilter
from aliases.models import Alias
from aliases.selectors import alias_list
from aliases.services import AliasVersionConflict, alias_import
from aliases.transfer import CONFLICT_CHOICES, CONTENT_TYPES, EXTENSIONS, FORMATS, TransferError, export_chunks, parse
from config.api import ApiError, ModelPermissions, error_responses


class _IgnoreFormatParam(DefaultContentNegotiation):
    """`?format=` names the file format here, not DRF's renderer (which would answer 404 for csv)."""

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


class _RawBody(BaseParser):
    """Lets any body through to the view, which reads the bytes itself (DRF would answer 415 otherwise)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        return {}


class ImportRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Position in the file, from 1.")
    alias = serializers.CharField(help_text="The name it is (or would be) saved under.")
    action = serializers.ChoiceField(choices=["create", "update", "unchanged", "error"])
    errors = serializers.DictField(child=serializers.CharField(), help_text="{field: why it is refused}.")
    suggestions = serializers.DictField(
        required=False, help_text="{field: the closest valid value} for refused values that have one."
    )
    note = serializers.CharField(required=False, help_text="E.g. renamed from, or skipped because it exists.")


class ImportCountsSerializer(serializers.Serializer):
    create = serializers.IntegerField()
    update = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    error = serializers.IntegerField()


class ImportResultSerializer(serializers.Serializer):
    applied = serializers.BooleanField(
        help_text="Whether anything was saved: false for a dry run, and when a row has an error and valid_only "
        "was not set (then nothing is saved)."
    )
    dry_run = serializers.BooleanField()
    counts = ImportCountsSerializer()
    rows = ImportRowSerializer(many=True)


def _format(request: Request, *, default: str | None = None) -> str:
    fmt = request.query_params.get("format", default)
    if fmt not in FORMATS:
        raise ApiError(
            f"format must be one of {', '.join(FORMATS)}.", status=400, code="invalid_format", param="format"
        )
    return fmt


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "")
    if value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise ApiError(f"{name} is 1 or 0.", status=400, code="invalid_parameter", param=name)


FORMAT_PARAM = OpenApiParameter(
    "format", str, enum=list(FORMATS), required=True, description="bodhi-yaml, json (the API's shape) or csv."
)


class AliasImportApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()  # POST needs aliases.add_alias (editors, admins)
    parser_classes = [_RawBody]
    content_negotiation_class = _IgnoreFormatParam
    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="models_import",
        summary="Import aliases from a file (the body, or the multipart field `file`)",
        description="Each row is checked with the alias rules; refused values come with the closest valid value "
        "where there is one. Nothing is saved if any row is refused, unless valid_only=1. One transaction.",
        tags=["models"],
        parameters=[
            FORMAT_PARAM,
            OpenApiParameter("dry_run", str, enum=["0", "1"], description="1: answer what would happen, save nothing."),
            OpenApiParameter("on_conflict", str, enum=list(CONFLICT_CHOICES), description="When a name exists."),
            OpenApiParameter("valid_only", str, enum=["0", "1"], description="1: save the valid rows anyway."),
        ],
        request={
            "application/yaml": OpenApiTypes.BINARY,
            "application/json": OpenApiTypes.BINARY,
            "text/csv": OpenApiTypes.BINARY,
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
        },
        responses={
            200: OpenApiResponse(ImportResultSerializer, description="One row per alias, and the counts."),
            **error_responses(400, 401, 403, 409, 413),
        },
    )
    def post(self, request: Request) -> Response:
        fmt = _format(request)
        on_conflict = request.query_params.get("on_conflict", "skip")
        if on_conflict not in CONFLICT_CHOICES:
            raise ApiError(
                f"on_conflict must be one of {', '.join(CONFLICT_CHOICES)}.",
                status=400,
                code="invalid_parameter",
                param="on_conflict",
            )
        dry_run, valid_only = _flag(request, "dry_run"), _flag(request, "valid_only")
        django_request: HttpRequest = request._request
        if django_request.content_type == "multipart/form-data":
            upload = django_request.FILES.get("file")
            if upload is None:
                raise ApiError("Send the file as the multipart field 'file'.", status=400, code="no_file", param="file")
            content = upload.read()
        else:
            content = django_request.body
        try:
            rows = parse(content, fmt)
            result = alias_import(
                rows=rows, by=request.user, on_conflict=on_conflict, valid_only=valid_only, dry_run=dry_run
            )
        except TransferError as exc:
            raise ApiError(str(exc), status=400, code="invalid_file", param="file") from exc
        except AliasVersionConflict as exc:
            raise ApiError(
                f"{exc} Nothing was imported; try again.", status=409, code="version_conflict", param="alias"
            ) from exc
        return Response(
            {
                "applied": result.applied,
                "dry_run": dry_run,
                "counts": result.counts,
                "rows": [row.as_dict() for row in result.rows],
            }
        )


EXPORT_FILTERS = {"search": "q", "source": "source", "repo": "repo", "file": "file"}


def exported_aliases(params: Any) -> Any:
    """The aliases a list with these query parameters shows (search, source, repo, file), in its order."""
    data = {target: params.get(name) for name, target in EXPORT_FILTERS.items() if params.get(name)}
    filterset = AliasFilter(data=data, queryset=alias_list())
    if not filterset.is_valid():
        name, messages = next(iter(filterset.errors.items()))
        raise ValueError(name, " ".join(messages))
    return filterset.qs.order_by("alias", "pk")


def export_response(aliases: Any, fmt: str, *, filename: str = "aliases") -> StreamingHttpResponse:
    response = StreamingHttpResponse(export_chunks(aliases, fmt), content_type=f"{CONTENT_TYPES[fmt]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"'
    return response


class AliasExportApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()  # GET needs aliases.view_alias (everyone signed in)
    content_negotiation_class = _IgnoreFormatParam
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        operation_id="models_export",
        summary="Export aliases as a file",
        description="The aliases the list shows for the same search and filters, as a download.",
        tags=["models"],
        parameters=[
            FORMAT_PARAM,
            OpenApiParameter("search", str, description="As in the list."),
            OpenApiParameter("source", str, enum=[c for c, _ in Alias.Source.choices]),
            OpenApiParameter("repo", str, description="Only this repo."),
            OpenApiParameter("file", str, enum=["local", "unavailable"]),
        ],
        responses={
            # Any: schema checkers parse JSON and YAML bodies (a list of aliases) rather than see a string.
            (200, "application/yaml"): OpenApiTypes.ANY,
            (200, "application/json"): OpenApiTypes.ANY,
            (200, "text/csv"): OpenApiTypes.STR,
            **error_responses(400, 401, 403),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        fmt = _format(request)
        try:
            aliases = exported_aliases(request.query_params)
        except ValueError as exc:
            name, message = exc.args
            param = next((key for key, target in EXPORT_FILTERS.items() if target == name), name)
            raise ApiError(message, status=400, code="invalid_parameter", param=param) from exc
        return export_response(aliases, fmt)
