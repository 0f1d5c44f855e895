"""JSON API for presets: /api/presets and /api/presets/<preset>, with the conventions of /api/models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.api import PARAM_GROUPS, REQUEST_SCHEMAS, ContextParamsSerializer, RequestParamsSerializer
from aliases.presets.kinds import PRESETS
from aliases.presets.models import DESCRIPTION_MAX, Preset
from aliases.presets.selectors import SEARCH_FIELDS, preset_list
from aliases.presets.services import (
    PRESET_FIELDS,
    PresetReadOnlyError,
    PresetVersionConflict,
    preset_create,
    preset_delete,
    preset_update,
)
from aliases.validators import TEXT_SCHEMA_PATTERN
from config.api import (
    ApiError,
    ListQuery,
    ModelPermissions,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    error_responses,
    list_envelope_serializer,
    model_sorts,
)
from config.crud import NamedObjectDeleteApi

PRESET_LIST_QUERY = ListQuery(
    sorts=model_sorts(Preset, ("name", "builtin", "version", "created_at", "updated_at")),
    default_sort="name",
    search_help=f"Case-insensitive text to find in {', '.join(SEARCH_FIELDS)}.",
)


class PresetSerializer(StrictSerializer):
    """A preset. Parameters left out (or null) are not in the preset: applying it keeps an alias's own value.
    In a request, `builtin`, `version`, `created_at` and `updated_at` are ignored (except `version` on PUT)."""

    name = StrictCharField(
        allow_blank=True,
        max_length=Preset._meta.get_field("name").max_length,
        help_text=str(Preset._meta.get_field("name").help_text),
        request_schema=REQUEST_SCHEMAS["alias"],
    )
    description = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        max_length=DESCRIPTION_MAX,
        help_text="What the preset is for.",
        request_schema={"pattern": TEXT_SCHEMA_PATTERN},
    )
    builtin = serializers.BooleanField(read_only=True, help_text="Shipped with ModelDesk; read-only.")
    request_params = RequestParamsSerializer(source="*", required=False, allow_null=True)
    context_params = ContextParamsSerializer(source="*", required=False, allow_null=True)
    version = serializers.IntegerField(read_only=True, help_text="Goes up by one with every saved change.")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and any(data.get(group, ...) is None for group in PARAM_GROUPS):
            data = {**data, **{group: {} for group in PARAM_GROUPS if group in data and data[group] is None}}
        return super().to_internal_value(data)

    def to_representation(self, instance: Preset) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Not set is null here, never [] or "": a preset's [] would read as "clear the alias's stop words".
        data["request_params"]["stop"] = instance.stop
        data["request_params"]["user"] = instance.user
        return data


class PresetUpdateSerializer(PresetSerializer):
    version = StrictIntegerField(help_text="The version you read. If the preset has changed since, the answer is 409.")


def _values(validated: Mapping[str, Any]) -> dict[str, Any]:
    """Every field: a PUT replaces the whole preset, so a parameter left out is no longer in it."""
    return {name: validated.get(name) for name in PRESET_FIELDS}


_preset_or_404 = PRESETS.get_or_api_404
_read_only_error = PRESETS.api_read_only


PRESET_PATH = OpenApiParameter(
    "preset", str, OpenApiParameter.PATH, description="The preset name; case does not matter."
)


class PresetCollectionApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Preset.objects.all()

    @extend_schema(
        operation_id="presets_list",
        summary="List presets",
        tags=["presets"],
        parameters=PRESET_LIST_QUERY.openapi_parameters(),
        responses={200: list_envelope_serializer(PresetSerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = PRESET_LIST_QUERY.parse(request.query_params)
        page = PRESET_LIST_QUERY.page(preset_list(search=params.search), params)
        return Response(page.envelope(PresetSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="presets_create",
        summary="Create a preset",
        tags=["presets"],
        request=PresetSerializer,
        responses={201: PresetSerializer, **error_responses(400, 401, 403, 415)},
    )
    def post(self, request: Request) -> Response:
        serializer = PresetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preset = preset_create(data=_values(serializer.validated_data), by=request.user)
        location = reverse("presets_api:preset-detail", kwargs={"preset": preset.name})
        return Response(PresetSerializer(preset).data, status=status.HTTP_201_CREATED, headers={"Location": location})


class PresetDetailApi(NamedObjectDeleteApi, APIView):
    permission_classes = [ModelPermissions]
    kind = PRESETS
    queryset = Preset.objects.all()

    @extend_schema(
        operation_id="presets_retrieve",
        summary="One preset",
        tags=["presets"],
        parameters=[PRESET_PATH],
        responses={200: PresetSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, preset: str) -> Response:
        return Response(PresetSerializer(_preset_or_404(preset)).data)

    @extend_schema(
        operation_id="presets_update",
        summary="Replace a preset (a different `name` in the body renames it)",
        tags=["presets"],
        parameters=[PRESET_PATH],
        request=PresetUpdateSerializer,
        responses={200: PresetSerializer, **error_responses(400, 401, 403, 404, 409, 415)},
    )
    def put(self, request: Request, preset: str) -> Response:
        current = _preset_or_404(preset)
        if current.builtin:
            raise _read_only_error(current)
        serializer = PresetUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            updated = preset_update(
                preset=current,
                data=_values(serializer.validated_data),
                expected_version=serializer.validated_data["version"],
                by=request.user,
            )
        except PresetReadOnlyError as exc:
            raise _read_only_error(exc.preset) from exc
        except PresetVersionConflict as conflict:
            raise ApiError(str(conflict), status=409, code="version_conflict", param="version") from conflict
        except Preset.DoesNotExist as exc:
            raise PRESETS.api_not_found(preset) from exc
        return Response(PresetSerializer(updated).data)

    @extend_schema(
        operation_id="presets_destroy",
        summary="Delete a preset",
        tags=["presets"],
        parameters=[PRESET_PATH],
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request: Request, preset: str) -> Response:
        return self.delete_named(request, preset)

    def delete_object(self, *, found: Preset, by: Any) -> None:
        preset_delete(preset=found, by=by)
