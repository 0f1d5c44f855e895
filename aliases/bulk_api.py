"""POST /api/models/bulk (issue 9, item 2): one action on many aliases. The work is aliases/bulk.py's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.api import AliasStateSerializer, _param_field
from aliases.bulk import (
    BULK_FIELDS,
    BulkAction,
    BulkResult,
    SkipCode,
    alias_bulk_apply,
    bulk_selection,
    export_formats,
    export_selection,
)
from aliases.models import Alias
from aliases.presets.selectors import preset_get
from aliases.validators import MODEL_ALIAS_NAME_MAX
from config.api import (
    ApiError,
    ModelPermissions,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    error_responses,
)

# --- request ---------------------------------------------------------------------------------------------------


class BulkFilterSerializer(StrictSerializer):
    """The list's query parameters, meaning what they mean for GET /api/models and GET /api/models/export."""

    search = StrictCharField(
        required=False, allow_blank=True, help_text="As the list's `search`, field:value terms included."
    )
    source = serializers.ChoiceField(choices=Alias.Source.choices, required=False, help_text="Only this source.")
    repo = StrictCharField(required=False, allow_blank=True, help_text="Repos containing this text, ignoring case.")
    file = serializers.ChoiceField(
        choices=[("local", "local"), ("unavailable", "unavailable")],
        required=False,
        help_text="Whether the file is here.",
    )


class BulkParamsSerializer(StrictSerializer):
    """{field: value} for `set`: the request and context parameters, typed as in an alias; null clears one."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: _param_field(name) for name in BULK_FIELDS}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="BulkValues",
        serializers=[
            BulkParamsSerializer,
            serializers.ListSerializer(child=serializers.ChoiceField(choices=list(BULK_FIELDS))),
        ],
        resource_type_field_name=None,
        many=False,
    )
)
class BulkValuesField(serializers.Field):
    """For `set`: {field: value}. For `clear`: a list of field names, or an object whose keys name them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) or (isinstance(data, list) and all(isinstance(item, str) for item in data)):
            return data
        raise serializers.ValidationError(
            "Expected an object {field: value} or a list of field names.", code="invalid_type"
        )

    def to_representation(self, value: Any) -> Any:
        return value


class VersionsField(serializers.DictField):
    """{alias: version}; a bad entry is reported under this field's name (an alias name is not a field)."""

    child = StrictIntegerField(min_value=1)

    def to_internal_value(self, data: Any) -> dict[str, int]:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            raise serializers.ValidationError(
                [f"{name}: {' '.join(str(message) for message in messages)}" for name, messages in exc.detail.items()]
            ) from exc


class BulkRequestSerializer(StrictSerializer):
    action = serializers.ChoiceField(choices=BulkAction.choices, help_text="What to do with every selected alias.")
    aliases = serializers.ListField(
        child=StrictCharField(max_length=MODEL_ALIAS_NAME_MAX),
        required=False,
        allow_empty=False,
        help_text="The aliases to act on, by name (case does not matter). Give this or `filter`.",
    )
    filter = BulkFilterSerializer(
        required=False,
        help_text="Act on every alias the list shows for these query parameters. Give this or `aliases`.",
    )
    values = BulkValuesField(
        required=False,
        help_text="set: {field: value} (null clears it); clear: a list of fields, or an object whose keys name them. "
        f"Fields: {', '.join(BULK_FIELDS)}. Checked by the alias rules; a refused value changes nothing.",
    )
    preset = StrictCharField(required=False, help_text="apply_preset: the preset's name (case does not matter).")
    format = serializers.ChoiceField(
        choices=list(export_formats()),
        required=False,
        help_text="export: the file format (default json): as GET /api/models/export, or `llama-server` (a shell "
        "script with one command per alias) or `ollama` (a zip of Modelfiles and create-all.sh).",
    )
    expected = VersionsField(
        required=False,
        help_text="{alias: version} as you read them: an alias at another version now is skipped, not overwritten. "
        "Entries for aliases not selected are ignored.",
    )
    unchanged_since = serializers.DateTimeField(
        required=False,
        help_text="Skip aliases saved after this time (e.g. when the list you chose from was loaded).",
    )

    NEEDS = {BulkAction.SET: "values", BulkAction.CLEAR: "values", BulkAction.APPLY_PRESET: "preset"}
    ONLY_FOR = {"values": (BulkAction.SET, BulkAction.CLEAR), "preset": (BulkAction.APPLY_PRESET,),
                "format": (BulkAction.EXPORT,)}  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = attrs["action"]
        if "aliases" in attrs and "filter" in attrs:
            raise serializers.ValidationError({"filter": "Give either aliases or filter, not both."})
        if "aliases" not in attrs and "filter" not in attrs:
            raise serializers.ValidationError({"aliases": "Give the aliases to act on, or a filter."})
        needed = self.NEEDS.get(action)
        if needed and needed not in attrs:
            raise serializers.ValidationError({needed: f"{action} needs {needed}."}, code="required")
        for name, actions in self.ONLY_FOR.items():
            if name in attrs and action not in actions:
                raise serializers.ValidationError({name: f"Not used by {action}."})
        if action == BulkAction.SET and not isinstance(attrs["values"], Mapping):
            raise serializers.ValidationError({"values": "set needs an object {field: value}."})
        if action == BulkAction.SET:
            params = BulkParamsSerializer(data=attrs["values"])
            if not params.is_valid():
                raise serializers.ValidationError({"values": params.errors})
            attrs["values"] = params.validated_data
        return attrs


# --- response --------------------------------------------------------------------------------------------------


class BulkSkipSerializer(serializers.Serializer):
    alias = serializers.CharField()
    reason = serializers.CharField(help_text="Why it was left as it is.")
    code = serializers.ChoiceField(choices=SkipCode.choices, help_text="Why, for scripts.")


class BulkCountsSerializer(serializers.Serializer):
    selected = serializers.IntegerField()
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    skipped = serializers.IntegerField()


class BulkResultSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BulkAction.choices)
    changed = serializers.ListField(
        child=serializers.CharField(), help_text="Each saved as a new version (delete: deleted), with an audit entry."
    )
    unchanged = serializers.ListField(child=serializers.CharField(), help_text="Already held the values.")
    skipped = BulkSkipSerializer(many=True)
    counts = BulkCountsSerializer()


class ExportedAliasSerializer(AliasStateSerializer):
    """One alias of a JSON export (the API's shape, without the file status)."""

    source = serializers.ChoiceField(choices=Alias.Source.choices)


def _result_data(result: BulkResult) -> dict[str, Any]:
    return {
        "action": result.action,
        "changed": result.changed,
        "unchanged": result.unchanged,
        "skipped": [{"alias": skip.alias, "reason": skip.reason, "code": str(skip.code)} for skip in result.skipped],
        "counts": result.counts,
    }


class BulkPermissions(ModelPermissions):
    """Every bulk action needs aliases.change_alias (a POST would otherwise ask for add_alias); delete also
    aliases.delete_alias, checked by the view once it knows the action."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class AliasBulkApi(APIView):
    permission_classes = [BulkPermissions]
    queryset = Alias.objects.all()
    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="models_bulk",
        summary="One action on many aliases: set, clear, apply_preset, delete or export",
        description="The aliases are named (`aliases`) or found by the list's search and filters (`filter`). "
        "One transaction: each alias changed gets its own version and audit entry; a value the alias rules refuse "
        "is a 400 naming the field and changes nothing. Generated (read-only) aliases, and aliases saved since "
        "`expected` / `unchanged_since`, are skipped with the reason. `export` answers with the export file "
        "(as GET /api/models/export).",
        tags=["models"],
        request=BulkRequestSerializer,
        responses={
            (200, "application/json"): OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="BulkAnswer",
                    serializers=[BulkResultSerializer, ExportedAliasSerializer(many=True)],
                    resource_type_field_name=None,
                    many=False,
                ),
                description="What changed and what was skipped, and why; for export with format json, the aliases.",
            ),
            (200, "application/yaml"): OpenApiTypes.ANY,
            (200, "text/csv"): OpenApiTypes.STR,
            **error_responses(400, 401, 403, 404, 415),
        },
    )
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        serializer = BulkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        action = data["action"]
        if action == BulkAction.DELETE and not request.user.has_perm("aliases.delete_alias"):
            raise ApiError("Your role does not allow deleting aliases.", status=403, code="permission_denied")
        preset = None
        if action == BulkAction.APPLY_PRESET:
            preset = preset_get(name=data["preset"])
            if preset is None:
                raise ApiError(
                    f"No preset named {data['preset']!r}.", status=404, code="preset_not_found", param="preset"
                )
        # A bad filter value is a ValidationError naming the parameter: the exception handler makes it a 400.
        selection = bulk_selection(names=data.get("aliases"), filters=data.get("filter"))
        if action == BulkAction.EXPORT:
            return export_selection(selection.aliases, data.get("format", "json"))
        result = alias_bulk_apply(
            action=action,
            selection=selection,
            by=request.user,
            values=data.get("values"),
            preset=preset,
            expected=data.get("expected"),
            unchanged_since=data.get("unchanged_since"),
        )
        return Response(_result_data(result))
