"""JSON API for aliases: /api/models and /api/models/<alias> (DESIGN.md, "JSON API").

Serializers check only the shape of a request (known keys, JSON types); every bound and cross-field rule is the
model's, reached through the services, whose Django ValidationError the exception handler turns into a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.file_status import AliasFile, FileStatus, alias_files
from aliases.kinds import ALIASES
from aliases.models import BASIC_FIELDS, CONTEXT_PARAMS, EDITABLE_FIELDS, REQUEST_PARAMS, Alias, AliasChange
from aliases.selectors import (
    SEARCH_FIELDS,
    alias_deleted_list,
    alias_list,
    alias_names_taken,
    alias_versions,
)
from aliases.services import (
    AliasReadOnlyError,
    AliasRestoreError,
    AliasVersionConflict,
    alias_create,
    alias_delete,
    alias_restore,
    alias_revert,
    alias_update,
    alias_update_merged,
)
from aliases.validators import (
    ALIAS_NAME_MAX,
    ALIAS_NAME_PATTERN,
    FILENAME_SCHEMA_PATTERN,
    REPO_SCHEMA_PATTERN,
    SNAPSHOT_SCHEMA_PATTERN,
    STOP_MAX_COUNT,
    STOP_MAX_LENGTH,
    STOP_WORD_SCHEMA_PATTERN,
    TEXT_SCHEMA_PATTERN,
    Bounded,
    chat_template_schema_pattern,
)
from config.api import (
    ApiError,
    ApiErrorSerializer,
    ListQuery,
    ModelPermissions,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    error_responses,
    list_envelope_serializer,
    model_sorts,
)
from config.crud import NamedObjectDeleteApi

SORTABLE_FIELDS = (
    *BASIC_FIELDS,
    "source",
    *(name for name in (*REQUEST_PARAMS, *CONTEXT_PARAMS) if name != "stop"),
    "version",
    "created_at",
    "updated_at",
)
ALIAS_LIST_QUERY = ListQuery(
    # Only the name ignores case (its unique index is on Lower(alias)); the other columns sort as the list page
    # sorts them, so the same (column, pk) indexes serve both.
    sorts=model_sorts(Alias, SORTABLE_FIELDS, ignore_case=("alias",)),
    default_sort="alias",
    sort_help=(
        "Column to sort by; `alias` ignores case, other text sorts as the database orders it (as the list page "
        "does); unset values come last; ties in creation order."
    ),
    search_help=(
        f"Case-insensitive text to find in {', '.join(SEARCH_FIELDS)}, with field:value terms to narrow: "
        "repo:, file:, alias:, snapshot:, template:, source:user|model, and number fields with =, <, <=, >, >= or "
        "a range a..b (e.g. `repo:TheBloke n_ctx:>=8192 temperature:<0.5`). A bad field value is a 400 on search."
    ),
)
PARAM_GROUPS = ("request_params", "context_params")


# --- serializers -----------------------------------------------------------------------------------------------


def _bounded(model_field: models.Field) -> Bounded | None:
    return next((v for v in model_field.validators if isinstance(v, Bounded)), None)


def _param_field(name: str) -> serializers.Field:
    """A request/context parameter, typed and documented from the model field (bounds are not restated)."""
    model_field = Alias._meta.get_field(name)
    help_text = str(model_field.help_text)
    bounded = _bounded(model_field)
    schema_range = None
    if bounded is not None:
        help_text += f" Allowed: {bounded.describe()}."
        values = (bounded.low, bounded.high, *bounded.specials)
        schema_range = (min(values), max(values))
    if isinstance(model_field, models.JSONField):
        return StopWordsField(
            child=StrictCharField(allow_blank=True, request_schema=STOP_WORD_REQUEST_SCHEMA),
            required=False,
            allow_null=True,
            help_text=f"{help_text} Returned as [] when not set; null in a request means the same.",
        )
    if isinstance(model_field, models.FloatField):
        return StrictFloatField(
            required=False, allow_null=True, schema_range=schema_range, help_text=f"{help_text} Null when not set."
        )
    if isinstance(model_field, models.IntegerField):
        return StrictIntegerField(
            required=False, allow_null=True, schema_range=schema_range, help_text=f"{help_text} Null when not set."
        )
    return StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=model_field.max_length,
        request_schema=REQUEST_SCHEMAS.get(name),
        help_text=f'{help_text} Returned as "" when not set; null in a request means the same.',
    )


# What the model's validators accept, for the schema of requests (responses may hold rows stored before a rule
# was checked whole). Names made from model files (owner/repo:quant) are the system's: a request names a user alias.
REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "alias": {"minLength": 1, "maxLength": ALIAS_NAME_MAX, "pattern": ALIAS_NAME_PATTERN},
    "repo": {"minLength": 3, "pattern": REPO_SCHEMA_PATTERN},
    "filename": {"minLength": 6, "pattern": FILENAME_SCHEMA_PATTERN},
    "snapshot": {"minLength": 1, "pattern": SNAPSHOT_SCHEMA_PATTERN},
    "chat_template": {"minLength": 1, "pattern": chat_template_schema_pattern()},
    "user": {"pattern": TEXT_SCHEMA_PATTERN},
}
STOP_REQUEST_SCHEMA = {"maxItems": STOP_MAX_COUNT, "uniqueItems": True}
STOP_WORD_REQUEST_SCHEMA = {"minLength": 1, "maxLength": STOP_MAX_LENGTH, "pattern": STOP_WORD_SCHEMA_PATTERN}


def _text_field(name: str) -> StrictCharField:
    model_field = Alias._meta.get_field(name)
    kwargs: dict[str, Any] = {"required": True}
    if model_field.has_default():
        kwargs = {"required": False, "default": model_field.get_default()}
    # Blank is the model's call (its message says what is expected), not DRF's generic "may not be blank"; the
    # schema still says minLength 1, since the model refuses it.
    return StrictCharField(
        allow_blank=True,
        max_length=model_field.max_length,
        help_text=str(model_field.help_text),
        request_schema=REQUEST_SCHEMAS[name],
        **kwargs,
    )


class StopWordsField(serializers.ListField):
    """The stop list; its count, length and uniqueness rules are the model's, stated in the request schema."""

    request_schema = STOP_REQUEST_SCHEMA


class RequestParamsSerializer(StrictSerializer):
    """Defaults sent with each chat request; unset values are null."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: _param_field(name) for name in REQUEST_PARAMS}


class ContextParamsSerializer(StrictSerializer):
    """How the server loads the model; null means the server's default."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: _param_field(name) for name in CONTEXT_PARAMS}


class AliasSerializer(StrictSerializer):
    """An alias. In a request, `source`, `version`, `created_at` and `updated_at` are ignored (except `version`
    on PUT), unknown keys are refused, and omitted fields take their defaults (parameters: not set)."""

    alias = _text_field("alias")
    repo = _text_field("repo")
    filename = _text_field("filename")
    snapshot = _text_field("snapshot")
    source = serializers.ChoiceField(
        choices=Alias.Source.choices,
        read_only=True,
        help_text="user: created here; model: generated from a local GGUF file, read-only.",
    )
    chat_template = _text_field("chat_template")
    request_params = RequestParamsSerializer(source="*", required=False, allow_null=True)
    context_params = ContextParamsSerializer(source="*", required=False, allow_null=True)
    version = serializers.IntegerField(read_only=True, help_text="Goes up by one with every saved change.")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    file_status = serializers.SerializerMethodField()
    file_progress = serializers.SerializerMethodField()
    file_hosts = serializers.SerializerMethodField()

    @extend_schema_field(
        serializers.ChoiceField(
            choices=list(FileStatus.ALL),
            help_text="Whether the alias would load: local (in the cache and readable), missing, incomplete (parts "
            "of a split model missing), downloading, corrupt, unreadable (no GGUF header).",
        )
    )
    def get_file_status(self, alias: Alias) -> str:
        return self._file(alias).status

    @extend_schema_field(
        serializers.FloatField(allow_null=True, help_text="0–100 while downloading and the size is known; else null.")
    )
    def get_file_progress(self, alias: Alias) -> float | None:
        percent = self._file(alias).percent
        return None if percent is None else round(percent, 2)

    @extend_schema_field(
        serializers.ListField(
            child=serializers.CharField(),
            help_text="Where the alias would load: the worker hosts whose cache holds its file, loadable (`shared: "
            "a, b` for a cache several hosts share). Empty unless file_status is local.",
        )
    )
    def get_file_hosts(self, alias: Alias) -> list[str]:
        return self._file(alias).hosts

    def _file(self, alias: Alias) -> AliasFile:
        files = self.context.get("alias_files")
        if files is None or alias.pk not in files:
            files = self.context["alias_files"] = {**(files or {}), **alias_files([alias])}
        return files[alias.pk]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and any(data.get(group, ...) is None for group in PARAM_GROUPS):
            # A null group means "nothing set"; DRF cannot merge a null into the flat data of a source="*" field.
            data = {**data, **{group: {} for group in PARAM_GROUPS if group in data and data[group] is None}}
        return super().to_internal_value(data)


class AliasUpdateSerializer(AliasSerializer):
    """A full replacement of an alias's editable fields, carrying the `version` that was read."""

    version = StrictIntegerField(help_text="The version you read. If the alias has changed since, the answer is 409.")


class AliasConflictErrorSerializer(ApiErrorSerializer):
    changed_by = serializers.CharField(help_text="Who saved the newer version.")
    changed_fields = serializers.ListField(
        child=serializers.CharField(), help_text="Fields changed since the version you sent."
    )
    conflict_fields = serializers.ListField(
        child=serializers.CharField(),
        help_text="Fields both you and they changed, to different values: the ones that need a choice. With "
        "?merge=true only these stop the save.",
    )


class AliasConflictSerializer(serializers.Serializer):
    error = AliasConflictErrorSerializer()
    current = AliasSerializer(help_text="The alias as it is now.")


def _editable_values(validated: Mapping[str, Any]) -> dict[str, Any]:
    """Every editable field: a PUT replaces the whole alias, so what was left out goes back to its default."""
    return {name: validated.get(name, Alias._meta.get_field(name).get_default()) for name in EDITABLE_FIELDS}


# --- views -----------------------------------------------------------------------------------------------------


_alias_or_404 = ALIASES.get_or_api_404
_read_only_error = ALIASES.api_read_only


def _conflict_error(conflict: AliasVersionConflict) -> ApiError:
    return ApiError(
        str(conflict),
        status=409,
        code="version_conflict",
        param="version",
        details={
            "changed_by": conflict.changed_by,
            "changed_fields": [change.field for change in conflict.changes],
            "conflict_fields": conflict.conflicts,
        },
        body={"current": AliasSerializer(conflict.current).data},
    )


def _detail_url(alias: Alias) -> str:
    return reverse("aliases_api:model-detail", kwargs={"alias": alias.alias})


ALIAS_PATH = OpenApiParameter("alias", str, OpenApiParameter.PATH, description="The alias name; case does not matter.")
MERGE_PARAM = OpenApiParameter(
    "merge",
    bool,
    OpenApiParameter.QUERY,
    required=False,
    description="With a stale `version`: apply the fields you changed since that version on top of what others "
    "saved, keeping theirs; 409 only when you both changed a field (listed in conflict_fields). Default false: "
    "any stale version is a 409.",
)


def _merge_flag(request: Request) -> bool:
    raw = request.query_params.get("merge", "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ApiError(f"merge must be true or false (got {raw!r}).", status=400, code="invalid_parameter", param="merge")


class AliasCollectionApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()  # names the model for ModelPermissions

    @extend_schema(
        operation_id="models_list",
        summary="List aliases",
        tags=["models"],
        parameters=ALIAS_LIST_QUERY.openapi_parameters(),
        responses={200: list_envelope_serializer(AliasSerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = ALIAS_LIST_QUERY.parse(request.query_params)
        try:
            aliases = alias_list(search=params.search)
        except ValidationError as exc:
            raise ApiError(" ".join(exc.messages), status=400, code="invalid_parameter", param="search") from exc
        page = ALIAS_LIST_QUERY.page(aliases, params)
        context = {"alias_files": alias_files(page.items)}  # every row's file in two queries
        return Response(page.envelope(AliasSerializer(page.items, many=True, context=context).data))

    @extend_schema(
        operation_id="models_create",
        summary="Create an alias",
        tags=["models"],
        request=AliasSerializer,
        responses={201: AliasSerializer, **error_responses(400, 401, 403, 415)},
    )
    def post(self, request: Request) -> Response:
        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alias = alias_create(data=_editable_values(serializer.validated_data), by=request.user)
        return Response(
            AliasSerializer(alias).data, status=status.HTTP_201_CREATED, headers={"Location": _detail_url(alias)}
        )


class AliasDetailApi(NamedObjectDeleteApi, APIView):
    permission_classes = [ModelPermissions]
    kind = ALIASES
    queryset = Alias.objects.all()  # names the model for ModelPermissions

    @extend_schema(
        operation_id="models_retrieve",
        summary="One alias",
        tags=["models"],
        parameters=[ALIAS_PATH],
        responses={200: AliasSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, alias: str) -> Response:
        return Response(AliasSerializer(_alias_or_404(alias)).data)

    @extend_schema(
        operation_id="models_update",
        summary="Replace an alias (a different `alias` in the body renames it)",
        tags=["models"],
        parameters=[ALIAS_PATH, MERGE_PARAM],
        request=AliasUpdateSerializer,
        responses={
            200: AliasSerializer,
            **error_responses(400, 401, 403, 404, 415),
            409: OpenApiResponse(
                AliasConflictSerializer,
                description="The alias changed since the version sent; nothing was saved. Says who changed "
                "which fields and carries the current alias.",
            ),
        },
    )
    def put(self, request: Request, alias: str) -> Response:
        current = _alias_or_404(alias)
        if current.is_read_only:  # before looking at the body: no correction of it would help
            raise _read_only_error(current)
        merge = _merge_flag(request)
        serializer = AliasUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            if merge:
                updated = alias_update_merged(
                    alias=current,
                    data=_editable_values(serializer.validated_data),
                    base_version=serializer.validated_data["version"],
                    by=request.user,
                ).alias
            else:
                updated = alias_update(
                    alias=current,
                    data=_editable_values(serializer.validated_data),
                    expected_version=serializer.validated_data["version"],
                    by=request.user,
                )
        except AliasReadOnlyError as exc:
            raise _read_only_error(exc.alias) from exc
        except AliasVersionConflict as conflict:
            raise _conflict_error(conflict) from conflict
        except Alias.DoesNotExist as exc:  # deleted by someone else since the lookup above
            raise ALIASES.api_not_found(alias) from exc
        return Response(AliasSerializer(updated).data)

    @extend_schema(
        operation_id="models_destroy",
        summary="Delete an alias",
        tags=["models"],
        parameters=[ALIAS_PATH],
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request: Request, alias: str) -> Response:
        return self.delete_named(request, alias)

    def delete_object(self, *, found: Alias, by: Any) -> None:
        alias_delete(alias=found, by=by)


# --- versions and deleted aliases ----------------------------------------------------------------------------


class AliasStateSerializer(serializers.Serializer):
    """An alias's editable fields as saved in one version, in the API's alias shape."""

    alias = serializers.CharField()
    repo = serializers.CharField()
    filename = serializers.CharField()
    snapshot = serializers.CharField()
    chat_template = serializers.CharField()
    request_params = RequestParamsSerializer(source="*")
    context_params = ContextParamsSerializer(source="*")


def _state(snapshot: Mapping[str, Any]) -> Alias:
    return Alias(**{name: snapshot[name] for name in EDITABLE_FIELDS if name in snapshot})


class AliasVersionSerializer(serializers.Serializer):
    """One saved version of an alias, whole."""

    version = serializers.IntegerField(help_text="The alias's version number after this save.")
    action = serializers.ChoiceField(choices=AliasChange.Action.choices, help_text="What made this version.")
    changed_by = serializers.SerializerMethodField(help_text="Who saved it; null for the system.")
    changed_at = serializers.DateTimeField(help_text="When it was saved.")
    changes = serializers.DictField(
        child=serializers.ListField(), help_text="{field: [before, after]} against the previous version."
    )
    alias = serializers.SerializerMethodField()

    def get_changed_by(self, record: AliasChange) -> str | None:
        return record.changed_by.get_username() if record.changed_by is not None else None

    @extend_schema_field(AliasStateSerializer(help_text="The alias as it was in this version."))
    def get_alias(self, record: AliasChange) -> dict[str, Any]:
        return AliasStateSerializer(_state(record.snapshot)).data


class DeletedAliasSerializer(AliasVersionSerializer):
    """A deleted alias: its last version, who deleted it and when, and whether its name is free to restore."""

    name = serializers.CharField(source="alias_name", help_text="The name it had.")
    name_taken = serializers.SerializerMethodField(
        help_text="Another alias has this name now: restore under a new name (`new_name`)."
    )

    def get_name_taken(self, record: AliasChange) -> bool:
        taken = self.context.get("names_taken")
        if taken is None:
            taken = alias_names_taken(names=[record.alias_name])
        return record.alias_name.lower() in taken


class RestoreSerializer(StrictSerializer):
    new_name = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=ALIAS_NAME_MAX,
        request_schema={"pattern": ALIAS_NAME_PATTERN},
        help_text="Restore under this name instead (when the old one is taken again).",
    )


VERSION_LIST_QUERY = ListQuery(
    sorts={"version": models.F("version")}, default_sort="version", default_sort_order="desc",
    search_help="Ignored.",
)  # fmt: skip
DELETED_LIST_QUERY = ListQuery(
    sorts={"changed_at": models.F("changed_at"), "alias": models.F("alias_name")},
    default_sort="changed_at",
    default_sort_order="desc",
    search_help="Case-insensitive text to find in the deleted alias's name.",
)
VERSION_PATH = OpenApiParameter("n", int, OpenApiParameter.PATH, description="The version number to go back to.")


class RevertPermissions(ModelPermissions):
    """A revert changes an alias: aliases.change_alias (a POST would otherwise ask for add_alias)."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class AliasVersionsApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()

    @extend_schema(
        operation_id="models_versions_list",
        summary="Every saved version of an alias, newest first",
        tags=["models"],
        parameters=[ALIAS_PATH, *VERSION_LIST_QUERY.openapi_parameters()],
        responses={200: list_envelope_serializer(AliasVersionSerializer), **error_responses(400, 401, 403, 404)},
    )
    def get(self, request: Request, alias: str) -> Response:
        params = VERSION_LIST_QUERY.parse(request.query_params)
        page = VERSION_LIST_QUERY.page(alias_versions(alias=_alias_or_404(alias)), params)
        return Response(page.envelope(AliasVersionSerializer(page.items, many=True).data))


class AliasRevertApi(APIView):
    permission_classes = [RevertPermissions]
    queryset = Alias.objects.all()

    @extend_schema(
        operation_id="models_versions_revert",
        summary="Revert an alias to a saved version (saved as a new version)",
        tags=["models"],
        parameters=[ALIAS_PATH, VERSION_PATH],
        request=None,
        responses={200: AliasSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request, alias: str, n: str) -> Response:
        current = _alias_or_404(alias)
        if current.is_read_only:
            raise _read_only_error(current)
        version = int(n) if n.isascii() and n.isdigit() and len(n) <= 9 else None
        if version is None or not alias_versions(alias=current).filter(version=version).exists():
            raise ApiError(f"{current.alias!r} has no saved version {n}.", status=404, code="version_not_found")
        try:
            reverted = alias_revert(alias=current, version=version, by=request.user)
        except AliasReadOnlyError as exc:
            raise _read_only_error(exc.alias) from exc
        return Response(AliasSerializer(reverted).data)


class DeletedAliasesApi(APIView):
    permission_classes = [ModelPermissions]
    queryset = Alias.objects.all()

    @extend_schema(
        operation_id="models_deleted_list",
        summary="Deleted aliases, newest deletion first",
        tags=["models"],
        parameters=DELETED_LIST_QUERY.openapi_parameters(),
        responses={200: list_envelope_serializer(DeletedAliasSerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = DELETED_LIST_QUERY.parse(request.query_params)
        rows = alias_deleted_list()
        if params.search:
            rows = rows.filter(alias_name__icontains=params.search)
        page = DELETED_LIST_QUERY.page(rows, params)
        context = {"names_taken": alias_names_taken(names=[record.alias_name for record in page.items])}
        return Response(page.envelope(DeletedAliasSerializer(page.items, many=True, context=context).data))


class DeletedAliasRestoreApi(APIView):
    permission_classes = [ModelPermissions]  # POST: aliases.add_alias, as a restore makes an alias
    queryset = Alias.objects.all()

    @extend_schema(
        operation_id="models_deleted_restore",
        summary="Restore a deleted alias as it was (optionally under a new name)",
        tags=["models"],
        parameters=[ALIAS_PATH],
        request=RestoreSerializer,
        responses={201: AliasSerializer, **error_responses(400, 401, 403, 404, 409, 415)},
    )
    def post(self, request: Request, alias: str) -> Response:
        serializer = RestoreSerializer(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        try:
            restored = alias_restore(
                name=alias, by=request.user, new_name=serializer.validated_data.get("new_name", "")
            )
        except AliasRestoreError as exc:
            status_code = 404 if exc.code == "not_deleted" else 409
            raise ApiError(
                str(exc), status=status_code, code=exc.code, param="new_name" if status_code == 409 else None
            ) from exc
        return Response(
            AliasSerializer(restored).data, status=status.HTTP_201_CREATED, headers={"Location": _detail_url(restored)}
        )
