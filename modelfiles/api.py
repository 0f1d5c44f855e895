"""JSON API for model files and downloads: /api/modelfiles, /api/modelfiles/pull, /api/modelfiles/status[/<id>],
/api/modelfiles/scan.

Same conventions as the alias API (config/api.py): list envelope, error envelope, strict request bodies. Every
write goes through modelfiles.services, whose Django ValidationError the exception handler turns into a 400.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F
from django.db.models.functions import Lower
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aliases.validators import (
    FILENAME_MAX,
    FILENAME_SCHEMA_PATTERN,
    REPO_MAX,
    REPO_SCHEMA_PATTERN,
    SNAPSHOT_MAX,
    SNAPSHOT_SCHEMA_PATTERN,
)
from config.api import (
    ApiError,
    ApiErrorSerializer,
    ListQuery,
    ModelPermissions,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    error_responses,
    list_envelope_serializer,
    model_sorts,
)
from modelfiles.models import Download, ModelFile, Verification
from modelfiles.selectors import (
    DOWNLOAD_SEARCH_FIELDS,
    MODELFILE_SEARCH_FIELDS,
    download_counts,
    download_get,
    download_limits_now,
    download_list,
    modelfile_alias_names,
    modelfile_list,
    modelfile_state_reason,
)
from modelfiles.services import (
    HUB_UNCHECKED,
    MAX_SPEED_LIMIT,
    MIN_SPEED_LIMIT,
    MOVES,
    AlreadyLocal,
    ModelFileBusy,
    ModelFileInUse,
    NoUpdate,
    PullRefused,
    download_cancel,
    download_limits_set,
    download_move,
    download_pause,
    download_request,
    download_resume,
    download_retry,
    download_speed_set,
    modelfile_check_updates,
    modelfile_delete,
    modelfile_sync,
    modelfile_sync_elsewhere,
    modelfile_update,
    verification_request,
)

MODELFILE_LIST_QUERY = ListQuery(
    sorts={
        **model_sorts(ModelFile, ("repo", "filename", "snapshot", "size", "modified_at", "state")),
        # The GGUF header's figures, named as in the `gguf` object.
        "parameters": F("gguf_parameters"),
        "quantization": Lower("gguf_quantization"),
        "context_length": F("gguf_context_length"),
    },
    default_sort="repo",
    search_help=f"Case-insensitive text to find in {', '.join(MODELFILE_SEARCH_FIELDS)}.",
)
DOWNLOAD_LIST_QUERY = ListQuery(
    sorts=model_sorts(
        Download,
        (
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "repo",
            "filename",
            "revision",
            "status",
            "bytes_total",
            "bytes_done",
            "attempts",
        ),
    ),
    default_sort="created_at",
    default_sort_order="desc",
    search_help=f"Case-insensitive text to find in {', '.join(DOWNLOAD_SEARCH_FIELDS)}.",
)
STATUS_FILTER = OpenApiParameter(
    "status",
    {"type": "array", "items": {"type": "string", "enum": list(Download.Status.values)}},
    OpenApiParameter.QUERY,
    explode=True,
    style="form",
    description="Only downloads in these states: repeat the parameter (status=queued&status=failed) or "
    f"separate them with commas. One of: {', '.join(Download.Status.values)}.",
)
HOST_FILTER = OpenApiParameter(
    "host",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description="Only the files in the cache of this worker host (MODELDESK_HOST), or of the location with this "
    "key (the `location` field).",
)
DOWNLOAD_ID = OpenApiParameter(
    "download_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The download's id, as returned by pull."
)


class RequiredPermissions(permissions.BasePermission):
    """The Django permissions a view lists per method in `required_permissions` (anonymous: 401)."""

    message = ModelPermissions.message

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # the view answers 405, the same for every role
        required = view.required_permissions.get("GET" if request.method == "HEAD" else request.method, ())
        return request.user.has_perms(required)


# --- serializers ---------------------------------------------------------------------------------------------------


class GgufSerializer(serializers.Serializer):
    """What the file's GGUF header says; unset values are null (an older converter leaves keys out)."""

    architecture = serializers.CharField(allow_null=True, help_text="e.g. llama, qwen2.")
    name = serializers.CharField(allow_null=True, help_text="general.name.")
    parameters = serializers.IntegerField(allow_null=True, help_text="Weights in this file (summed from its tensors).")
    size_label = serializers.CharField(allow_null=True, help_text="general.size_label, e.g. 7B.")
    quantization = serializers.CharField(allow_null=True, help_text="The file type, e.g. Q4_K_M, F16.")
    context_length = serializers.IntegerField(allow_null=True, help_text="The longest context the model was made for.")
    embedding_length = serializers.IntegerField(allow_null=True)
    block_count = serializers.IntegerField(allow_null=True)
    tokenizer_model = serializers.CharField(allow_null=True, help_text="tokenizer.ggml.model, e.g. llama, gpt2.")
    chat_template = serializers.CharField(allow_null=True, help_text="The embedded chat template; null when none.")
    split_no = serializers.IntegerField(allow_null=True, help_text="This file's part number (from 1) in a split set.")
    split_count = serializers.IntegerField(allow_null=True, help_text="Parts in the split set; null when not split.")


class SplitSetSerializer(serializers.Serializer):
    parts = serializers.IntegerField(help_text="Parts in the set.")
    present = serializers.IntegerField(help_text="Parts of the set in this snapshot.")
    total_size = serializers.IntegerField(help_text="Bytes of the parts in this snapshot.")
    complete = serializers.BooleanField(help_text="Every part is here and readable: the set can load from part 1.")


def gguf_data(modelfile: ModelFile) -> dict | None:
    if not modelfile.gguf_read_key or modelfile.state == ModelFile.State.UNREADABLE:
        return None
    return {
        "architecture": modelfile.gguf_architecture or None,
        "name": modelfile.gguf_name or None,
        "parameters": modelfile.gguf_parameters,
        "size_label": modelfile.gguf_size_label or None,
        "quantization": modelfile.gguf_quantization or None,
        "context_length": modelfile.gguf_context_length,
        "embedding_length": modelfile.gguf_embedding_length,
        "block_count": modelfile.gguf_block_count,
        "tokenizer_model": modelfile.gguf_tokenizer_model or None,
        "chat_template": modelfile.gguf_chat_template or None,
        "split_no": modelfile.split_no,
        "split_count": modelfile.split_count,
    }


class UpdateSerializer(serializers.Serializer):
    """What the update check found: the ref now points at another commit that holds other bytes for the file."""

    ref = serializers.CharField(source="update_ref", help_text="The branch or tag that moved.")
    commit = serializers.CharField(source="update_commit", help_text="The commit it points at on the Hub now.")
    etag = serializers.CharField(source="update_etag", help_text="The file's sha256 (or git blob sha1) there.")
    size = serializers.IntegerField(source="update_size", allow_null=True, help_text="Bytes, when the Hub said.")
    checked_at = serializers.DateTimeField(source="update_checked_at", allow_null=True)


class ModelFileSerializer(serializers.ModelSerializer):
    """A GGUF file in a cached snapshot. `aliases` are the aliases that load it (by commit or by a ref of it).
    `state` says whether it can load: ok, incomplete (parts of its split set missing or damaged), corrupt, or
    unreadable (no GGUF header could be read; `state_reason` says why)."""

    refs = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Branches and tags pointing at this snapshot."
    )
    size = serializers.IntegerField(read_only=True, help_text="Bytes.")
    aliases = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=ModelFile.State.values, read_only=True)
    state_reason = serializers.SerializerMethodField()
    gguf = serializers.SerializerMethodField()
    split = serializers.SerializerMethodField()
    update = serializers.SerializerMethodField()
    host = serializers.SerializerMethodField()
    location = serializers.SerializerMethodField()

    class Meta:
        model = ModelFile
        # `id`: what DELETE /api/modelfiles/<id> takes.
        fields = (
            "id",
            "repo",
            "filename",
            "snapshot",
            "refs",
            "size",
            "etag",
            "modified_at",
            "aliases",
            "state",
            "state_reason",
            "gguf",
            "split",
            "update",
            "host",
            "location",
        )
        read_only_fields = fields

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="Where the file is: the worker host whose cache holds it, or `shared: a, b` for a cache "
            "several hosts share; null for a row no scan has claimed since hosts were known.",
        )
    )
    def get_host(self, modelfile: ModelFile) -> str | None:
        return modelfile.location.label if modelfile.location_id else None

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="The key of the cache (location) that holds the file.")
    )
    def get_location(self, modelfile: ModelFile) -> str | None:
        return modelfile.location.key if modelfile.location_id else None

    @extend_schema_field(UpdateSerializer(allow_null=True))
    def get_update(self, modelfile: ModelFile) -> dict | None:
        if not modelfile.update_commit:
            return None
        return UpdateSerializer(modelfile).data

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Why the file cannot load; null when ok."))
    def get_state_reason(self, modelfile: ModelFile) -> str | None:
        return modelfile_state_reason(modelfile) or None

    @extend_schema_field(GgufSerializer(allow_null=True, help_text="Null when no GGUF header could be read."))
    def get_gguf(self, modelfile: ModelFile) -> dict | None:
        return gguf_data(modelfile)

    @extend_schema_field(SplitSetSerializer(allow_null=True, help_text="The split set; null for a single file."))
    def get_split(self, modelfile: ModelFile) -> dict | None:
        if not modelfile.split_count:
            return None
        return {
            "parts": modelfile.split_count,
            "present": modelfile.split_present or 0,
            "total_size": modelfile.split_total_size or 0,
            "complete": modelfile.state == ModelFile.State.OK,
        }

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_aliases(self, modelfile: ModelFile) -> list[str]:
        names = self.context.get("alias_names")
        if names is None:
            names = modelfile_alias_names([modelfile])
        return names.get(modelfile.pk, [])


def modelfiles_data(files: list[ModelFile]) -> list[dict]:
    """Files as JSON, with their aliases found in one query for all of them."""
    return ModelFileSerializer(files, many=True, context={"alias_names": modelfile_alias_names(files)}).data


class DownloadErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. gated_repo, file_not_found, network_error, cancelled.")
    message = serializers.CharField(help_text="What happened and what to do about it.")


class DownloadNoteSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="waiting_for_worker: queued, but the task queue could not be reached. hub_unchecked: queued "
        "without the pre-flight, the Hub could not be asked in time (the worker asks it when it starts)."
    )
    message = serializers.CharField(help_text="What it means; it resolves itself once the queue or Hub answers.")


PRIORITIES = {label: value for value, label in Download.Priority.choices}
PRIORITY_FIELD = serializers.ChoiceField(
    choices=list(PRIORITIES),
    help_text="high, normal or low: queued downloads start highest priority first, then in the operators' order "
    "(POST .../move), then oldest request first.",
)
MAX_SPEED_HELP = (
    f"Bytes per second, {MIN_SPEED_LIMIT:,} to {MAX_SPEED_LIMIT:,}; null: no limit. A running transfer follows a "
    "change within about a second."
)


class DownloadSerializer(serializers.ModelSerializer):
    """A pull request and its progress. `error` is set when it failed or was cancelled, and while a transient
    fault is being retried; otherwise null. `note` is set while it waits for the task queue, or while it is queued
    without the Hub's pre-flight answer."""

    commit = serializers.SerializerMethodField()
    verified = serializers.SerializerMethodField()
    note = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()
    host = serializers.SerializerMethodField()
    speed = serializers.FloatField(read_only=True, allow_null=True, help_text="Bytes per second; null when idle.")
    eta = serializers.FloatField(read_only=True, allow_null=True, help_text="Seconds left at the current speed.")
    priority = serializers.SerializerMethodField()
    max_speed = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Its own bandwidth limit in bytes per second; null: only the global one (/api/modelfiles/limits).",
    )
    position = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Where operators placed it among the waiting downloads (1 first); null: not moved since it was "
        "asked for. Queued downloads start by priority, then position (null after the numbers), then request time.",
    )

    class Meta:
        model = Download
        fields = (
            "id",
            "repo",
            "filename",
            "revision",
            "commit",
            "status",
            "verified",
            "bytes_total",
            "bytes_done",
            "percent",
            "speed",
            "eta",
            "error",
            "note",
            "attempts",
            "retry_at",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
            "parts",
            "part",
            "host",
            "priority",
            "position",
            "max_speed",
        )
        read_only_fields = fields
        extra_kwargs = {
            "parts": {
                "help_text": "Files the download brings: 1, or the number of parts of a split model (the "
                "filename is then its part 1, and the sizes and progress are the whole set's)."
            },
            "part": {"help_text": "The part of a split model being fetched now (from 1); null otherwise."},
            "attempts": {
                "help_text": "Tries started since it was asked for or last retried (a try stopped by a pause is "
                "not counted); a transient fault is retried up to MODELDESK_MAX_ATTEMPTS tries."
            },
            "retry_at": {
                "help_text": "Set while it waits to retry after a transient fault (status stays `downloading`): "
                "when try `attempts + 1` starts. Null otherwise."
            },
        }

    @extend_schema_field(PRIORITY_FIELD)
    def get_priority(self, download: Download) -> str:
        return Download.Priority(download.priority).label

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="The worker host it was aimed at; null: any worker.")
    )
    def get_host(self, download: Download) -> str | None:
        return download.host or None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The commit the revision resolved to."))
    def get_commit(self, download: Download) -> str | None:
        return download.commit or None

    @extend_schema_field(
        serializers.ChoiceField(
            choices=["sha256", "git-sha1"],
            allow_null=True,
            help_text="The hash compared with the Hub's before the file became visible: sha256 for LFS files, "
            "the git blob sha1 for files kept in git; null until the download completed.",
        )
    )
    def get_verified(self, download: Download) -> str | None:
        return download.verified or None

    @extend_schema_field(serializers.FloatField(allow_null=True, help_text="0–100; null while the size is unknown."))
    def get_percent(self, download: Download) -> float | None:
        percent = download.percent
        return None if percent is None else round(percent, 2)

    @extend_schema_field(DownloadErrorSerializer(allow_null=True))
    def get_error(self, download: Download) -> dict[str, str] | None:
        if not download.error_code and not download.error_message:
            return None
        if download.error_code == HUB_UNCHECKED:
            return None  # a note, not an error
        return {"code": download.error_code or "error", "message": download.error_message}

    @extend_schema_field(DownloadNoteSerializer(allow_null=True))
    def get_note(self, download: Download) -> dict[str, str] | None:
        if download.waiting_for_worker:
            return {"code": "waiting_for_worker", "message": Download.WAITING_NOTE}
        if download.error_code == HUB_UNCHECKED:
            return {"code": HUB_UNCHECKED, "message": download.error_message}
        return None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username of who asked for it."))
    def get_requested_by(self, download: Download) -> str | None:
        return download.requested_by.get_username() if download.requested_by else None


class PullSerializer(StrictSerializer):
    """What to download. The rules (repo id, file path ending in .gguf, branch/tag/commit) are the service's
    (`pull_validate`); the schema states them for requests."""

    repo = StrictCharField(
        allow_blank=True,
        max_length=REPO_MAX,
        help_text="The Hugging Face repo id, owner/name.",
        request_schema={"minLength": 3, "pattern": REPO_SCHEMA_PATTERN},
    )
    filename = StrictCharField(
        allow_blank=True,
        max_length=FILENAME_MAX,
        help_text="Path of the .gguf file in the repo; each part between '/' at most 255 bytes of UTF-8.",
        request_schema={"minLength": 6, "pattern": FILENAME_SCHEMA_PATTERN},
    )
    revision = StrictCharField(
        required=False,
        default="main",
        allow_blank=True,
        max_length=SNAPSHOT_MAX,
        help_text="Branch, tag or commit.",
        request_schema={"minLength": 1, "pattern": SNAPSHOT_SCHEMA_PATTERN},
    )
    host = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=63,
        help_text="The worker host (MODELDESK_HOST) whose cache the file goes to; empty or absent: any worker.",
    )
    priority = serializers.ChoiceField(
        choices=list(PRIORITIES),
        required=False,
        default="normal",
        help_text="Its place in the queue: high, normal (default) or low. Queued downloads start highest priority "
        "first, then in the operators' order, then oldest request first.",
    )
    max_speed = StrictIntegerField(
        required=False,
        default=None,
        allow_null=True,
        schema_range=(MIN_SPEED_LIMIT, MAX_SPEED_LIMIT),
        help_text=f"Its own bandwidth limit. {MAX_SPEED_HELP} The global limit applies as well.",
    )


class DownloadConflictSerializer(serializers.Serializer):
    error = ApiErrorSerializer()
    current = DownloadSerializer(help_text="The download as it is now.")


class AlreadyLocalSerializer(serializers.Serializer):
    error = ApiErrorSerializer()
    modelfile = ModelFileSerializer(allow_null=True, help_text="The cached file, when the scanner has listed it.")


# --- views ---------------------------------------------------------------------------------------------------------


def _download_or_404(download_id: str) -> Download:
    download = download_get(download_id=download_id)
    if download is None:
        raise ApiError(f"No download with id {download_id!r}.", status=404, code="download_not_found")
    return download


def _detail_url(download: Download) -> str:
    return reverse("modelfiles_api:download-detail", kwargs={"download_id": str(download.pk)})


def _statuses(raw: list[str]) -> list[str]:
    statuses = [value.strip() for item in raw for value in item.split(",") if value.strip()]
    unknown = [value for value in statuses if value not in Download.Status.values]
    if unknown:
        raise ApiError(
            f"Unknown status {unknown[0]!r}; use one or more of: {', '.join(Download.Status.values)}.",
            status=400,
            code="invalid_parameter",
            param="status",
        )
    return statuses


def _refused(exc: PullRefused) -> ApiError:
    return ApiError(exc.reason, status=exc.status, code=exc.error_code, param=exc.param)


def _conflict(download: Download, message: str, code: str) -> ApiError:
    return ApiError(message, status=409, code=code, body={"current": DownloadSerializer(download).data})


class ModelFileListApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["modelfiles.view_modelfile"]}

    @extend_schema(
        operation_id="modelfiles_list",
        summary="List the model files in the local cache",
        tags=["modelfiles"],
        parameters=[*MODELFILE_LIST_QUERY.openapi_parameters(), HOST_FILTER],
        responses={200: list_envelope_serializer(ModelFileSerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = MODELFILE_LIST_QUERY.parse(request.query_params)
        host = request.query_params.get("host", "").strip()
        page = MODELFILE_LIST_QUERY.page(modelfile_list(search=params.search, host=host), params)
        return Response(page.envelope(modelfiles_data(page.items)))


class PullApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.request_download"]}

    @extend_schema(
        operation_id="modelfiles_pull",
        summary="Download a GGUF file from the Hub",
        description="Queues a download (201). If the same file and revision is already being downloaded, answers "
        "200 with that download instead. If the cache already holds the file for that revision, answers 409 "
        "`already_local`; nothing is downloaded. Follow progress at /api/modelfiles/status/{id}. When the task "
        "queue is unreachable the download is still queued (201) with the note `waiting_for_worker`; it is sent "
        "to a worker by itself once the queue answers.\n\n"
        "Before queueing, the Hub is asked about the file (pre-flight, at most MODELDESK_PREFLIGHT_TIMEOUT_SECONDS, "
        "3 s by default) and the source rules are applied; a refusal creates no download: 404 `repo_not_found` "
        "(missing or private repo), `revision_not_found`, `file_not_found`; 403 `gated_repo`, `unauthorized` "
        "(HF_TOKEN cannot read it), `repo_not_allowed` (outside MODELDESK_ALLOWED_REPOS), `file_too_large` (over "
        "MODELDESK_MAX_FILE_BYTES); 400 `insufficient_space` (larger than the free space of the cache volume less "
        "the reserve). `param` names the field at fault. When the Hub cannot be asked in time (down, refusing, "
        "too slow, 5xx), the download is queued all the same (201) with the note `hub_unchecked`.\n\n"
        "A part of a split model (`x-00002-of-00003.gguf`) pulls the whole set as one download: its `filename` is "
        "part 1, `parts` counts the files, `bytes_total` and `bytes_done` are the set's. The pre-flight asks about "
        "every part (a part missing on the Hub is `file_not_found`, naming it); `already_local` only when every "
        "part is local, otherwise the missing parts are fetched.\n\n"
        "`priority` and `max_speed` place it in the queue and limit its bandwidth (both can be changed later: "
        "`POST .../move`, `POST .../speed`); a download already active keeps its own.",
        tags=["modelfiles"],
        request=PullSerializer,
        responses={
            201: OpenApiResponse(DownloadSerializer, description="Queued (note `hub_unchecked`: without pre-flight)."),
            200: OpenApiResponse(DownloadSerializer, description="Already downloading: the active download."),
            409: OpenApiResponse(AlreadyLocalSerializer, description="Already in the local cache (`already_local`)."),
            **error_responses(400, 401, 403, 404, 415),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = PullSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        try:
            download, created = download_request(
                repo=values["repo"],
                filename=values["filename"],
                revision=values["revision"],
                by=request.user,
                host=values["host"],
                priority=PRIORITIES[values["priority"]],
                max_speed=values["max_speed"],
            )
        except AlreadyLocal as exc:
            modelfile = modelfiles_data([exc.modelfile])[0] if exc.modelfile is not None else None
            every = f" (all {exc.parts} parts of its split model)" if exc.parts > 1 else ""
            where = f"cache of {values['host']}" if values["host"] else "local cache"
            raise ApiError(
                f"{values['filename']} from {values['repo']} at {values['revision']!r}{every} is already in the "
                f"{where}; nothing to download.",
                status=409,
                code="already_local",
                body={"modelfile": modelfile},
            ) from exc
        except PullRefused as exc:
            raise _refused(exc) from exc
        download = download_get(download_id=download.pk) or download
        if created:
            return Response(
                DownloadSerializer(download).data,
                status=status.HTTP_201_CREATED,
                headers={"Location": _detail_url(download)},
            )
        return Response(DownloadSerializer(download).data, headers={"Location": _detail_url(download)})


class DownloadListApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["modelfiles.view_download"]}

    @extend_schema(
        operation_id="modelfiles_status_list",
        summary="List downloads, newest first",
        tags=["modelfiles"],
        parameters=[*DOWNLOAD_LIST_QUERY.openapi_parameters(), STATUS_FILTER],
        responses={200: list_envelope_serializer(DownloadSerializer), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        params = DOWNLOAD_LIST_QUERY.parse(request.query_params)
        statuses = _statuses(request.query_params.getlist("status"))
        page = DOWNLOAD_LIST_QUERY.page(download_list(statuses=statuses, search=params.search), params)
        return Response(page.envelope(DownloadSerializer(page.items, many=True).data))


class DownloadDetailApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["modelfiles.view_download"]}

    @extend_schema(
        operation_id="modelfiles_status_retrieve",
        summary="One download and its progress",
        tags=["modelfiles"],
        parameters=[DOWNLOAD_ID],
        responses={200: DownloadSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, download_id: str) -> Response:
        return Response(DownloadSerializer(_download_or_404(download_id)).data)


class DownloadChangeApi(APIView):
    """A POST that moves one download on through its service (cancel, pause, resume): 200 with the download as
    it is then, or 409 with it as it is when the service refused the move from its state."""

    permission_classes = [RequiredPermissions]
    change: Callable[..., bool]  # the service: (download=, by=) -> whether the row moved
    refusal = ""  # the 409's message, with {status}
    refusal_code = ""

    def post(self, request: Request, download_id: str) -> Response:
        download = _download_or_404(download_id)
        if not type(self).change(download=download, by=request.user):
            download.refresh_from_db()
            raise _conflict(download, self.refusal.format(status=download.status), self.refusal_code)
        return Response(DownloadSerializer(_download_or_404(download_id)).data)


def _change_schema(name: str, *, summary: str, description: str, done: str, refused: str, code: str, body=None):
    """The schema of a POST that changes one download; `body`: the serializer of its JSON body, if it has one."""
    errors = error_responses(400, 401, 403, 404, 415) if body is not None else error_responses(401, 403, 404)
    return extend_schema_view(
        post=extend_schema(
            operation_id=f"modelfiles_status_{name}",
            summary=summary,
            description=f"{description} 409 `{code}` when {refused}.",
            tags=["modelfiles"],
            parameters=[DOWNLOAD_ID],
            request=body,
            responses={
                200: OpenApiResponse(DownloadSerializer, description=done),
                409: OpenApiResponse(DownloadConflictSerializer, description=f"Refused (`{code}`): {refused}."),
                **errors,
            },
        )
    )


@_change_schema(
    "cancel",
    summary="Cancel an active or paused download",
    description="The worker stops within about a second and the partial file is deleted, so a retry starts from "
    "the first byte (pause keeps it: `POST .../pause`).",
    done="Cancelled.",
    refused="the download is not queued, downloading, verifying or paused",
    code="not_active",
)
class DownloadCancelApi(DownloadChangeApi):
    required_permissions = {"POST": ["modelfiles.cancel_download"]}
    change = staticmethod(download_cancel)
    refusal = "This download is {status}, not active: nothing to cancel."
    refusal_code = "not_active"


@_change_schema(
    "pause",
    summary="Pause a queued or downloading download",
    description="The worker stops within about a couple of seconds and lets go of it; the partial file stays. The "
    "download stays active (`paused`), keeps its place in the queue, and `POST .../resume` continues it from the "
    "bytes already fetched.",
    done="Paused.",
    refused="it is not queued or downloading (verifying is nearly done; finished ones have nothing to pause)",
    code="not_pausable",
)
class DownloadPauseApi(DownloadChangeApi):
    required_permissions = {"POST": ["modelfiles.pause_download"]}
    change = staticmethod(download_pause)
    refusal = "This download is {status}: only queued or downloading downloads can be paused."
    refusal_code = "not_pausable"


@_change_schema(
    "resume",
    summary="Resume a paused download",
    description="Queues it again in the place it had (its priority and its place in the operators' order); the "
    "worker continues the partial file with a Range request and checks the whole file's sha256 at the end.",
    done="Queued again.",
    refused="the download is not paused",
    code="not_paused",
)
class DownloadResumeApi(DownloadChangeApi):
    required_permissions = {"POST": ["modelfiles.pause_download"]}
    change = staticmethod(download_resume)
    refusal = "This download is {status}, not paused: nothing to resume."
    refusal_code = "not_paused"


class MoveSerializer(StrictSerializer):
    to = serializers.ChoiceField(
        choices=list(MOVES),
        help_text="top: before every queued download; up, down: past one queued download (paused ones keep their "
        "places).",
    )


class SpeedSerializer(StrictSerializer):
    max_speed = StrictIntegerField(
        allow_null=True, schema_range=(MIN_SPEED_LIMIT, MAX_SPEED_LIMIT), help_text=MAX_SPEED_HELP
    )


class DownloadBodyChangeApi(APIView):
    """A POST with a JSON body that changes one download's place or limit through its service: 200 with the
    download as it is then, or 409 with it as it is when its state does not allow the change."""

    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.pause_download"]}
    body: type[StrictSerializer]
    refusal = ""  # the 409's message, with {status}
    refusal_code = ""

    def change(self, *, download: Download, values: dict, by) -> bool:
        raise NotImplementedError

    def post(self, request: Request, download_id: str) -> Response:
        download = _download_or_404(download_id)
        serializer = self.body(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not self.change(download=download, values=serializer.validated_data, by=request.user):
            download.refresh_from_db()
            raise _conflict(download, self.refusal.format(status=download.status), self.refusal_code)
        return Response(DownloadSerializer(_download_or_404(download_id)).data)


@_change_schema(
    "move",
    body=MoveSerializer,
    summary="Move a queued or paused download in the queue",
    description="Queued downloads start by priority, then in the order operators gave them, then oldest request "
    "first. `top` puts it before every queued download, `up` and `down` move it past one. Moved past a download "
    "of another priority, it takes that priority (shown in `priority`), so it stands where it was put. Already "
    "first or last: no change, 200.",
    done="Moved (its `priority` and `position` now).",
    refused="it is not queued or paused",
    code="not_waiting",
)
class DownloadMoveApi(DownloadBodyChangeApi):
    body = MoveSerializer
    refusal = "This download is {status}: only queued or paused downloads have a place in the queue."
    refusal_code = "not_waiting"

    def change(self, *, download: Download, values: dict, by) -> bool:
        return download_move(download=download, to=values["to"], by=by)


@_change_schema(
    "speed",
    body=SpeedSerializer,
    summary="Set an active download's own bandwidth limit",
    description=f"{MAX_SPEED_HELP} The global limit (`/api/modelfiles/limits`) applies as well: the download gets "
    "the lower of the two.",
    done="Set.",
    refused="the download has finished",
    code="not_active",
)
class DownloadSpeedApi(DownloadBodyChangeApi):
    body = SpeedSerializer
    refusal = "This download is {status}, not active: it has no speed to limit."
    refusal_code = "not_active"

    def change(self, *, download: Download, values: dict, by) -> bool:
        return download_speed_set(download=download, max_speed=values["max_speed"], by=by)


class LimitsSerializer(serializers.Serializer):
    max_concurrent = serializers.IntegerField(
        allow_null=True,
        help_text="Downloads that may run at once over all workers (MODELDESK_MAX_CONCURRENT_DOWNLOADS); null: no "
        "limit. More wait in the queue and start as slots free.",
    )
    worker_concurrent = serializers.IntegerField(
        allow_null=True,
        help_text="Downloads that may run at once on one worker (MODELDESK_WORKER_CONCURRENT_DOWNLOADS, as this "
        "server is configured; each worker reads its own); null: no limit beyond its Celery processes.",
    )
    max_speed = serializers.IntegerField(
        allow_null=True,
        help_text="The global bandwidth limit in bytes per second, shared fairly by the running downloads (a download "
        "held lower by its own limit leaves the rest to the others); null: none.",
    )
    max_speed_from_env = serializers.BooleanField(
        help_text="True while nobody has set it here: MODELDESK_MAX_DOWNLOAD_SPEED's value."
    )
    running = serializers.IntegerField(help_text="Downloads transferring or verifying now.")
    queued = serializers.IntegerField(help_text="Downloads waiting for a slot or a worker.")
    updated_at = serializers.DateTimeField(allow_null=True, help_text="When the global limit was last set here.")
    updated_by = serializers.CharField(allow_null=True, help_text="Who set it.")


class LimitsChangeSerializer(StrictSerializer):
    max_speed = StrictIntegerField(
        allow_null=True,
        schema_range=(MIN_SPEED_LIMIT, MAX_SPEED_LIMIT),
        help_text=f"The global bandwidth limit. {MAX_SPEED_HELP}",
    )


def limits_data() -> dict:
    limits = download_limits_now()
    counts = download_counts()
    return {
        "max_concurrent": limits.max_concurrent,
        "worker_concurrent": limits.worker_concurrent,
        "max_speed": limits.max_speed,
        "max_speed_from_env": limits.max_speed_from_env,
        "running": counts["running"],
        "queued": counts["queued"],
        "updated_at": limits.updated_at,
        "updated_by": limits.updated_by,
    }


class DownloadLimitsApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["modelfiles.view_download"], "PUT": ["modelfiles.pause_download"]}

    @extend_schema(
        operation_id="modelfiles_limits_retrieve",
        summary="The download limits",
        tags=["modelfiles"],
        responses={200: LimitsSerializer, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> Response:
        return Response(LimitsSerializer(limits_data()).data)

    @extend_schema(
        operation_id="modelfiles_limits_update",
        summary="Change the global bandwidth limit",
        description="Running transfers follow it within about a second. The concurrency limits are the server's "
        "settings and are not changed here.",
        tags=["modelfiles"],
        request=LimitsChangeSerializer,
        responses={200: LimitsSerializer, **error_responses(400, 401, 403, 415)},
    )
    def put(self, request: Request) -> Response:
        serializer = LimitsChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        download_limits_set(max_speed=serializer.validated_data["max_speed"], by=request.user)
        return Response(LimitsSerializer(limits_data()).data)


class DownloadRetryApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.retry_download"]}

    @extend_schema(
        operation_id="modelfiles_status_retry",
        summary="Retry a failed or cancelled download",
        description="Queues it again: a failed one resumes from the bytes already fetched, a cancelled one starts "
        "over (its partial file was deleted); its attempts are counted afresh. If a newer download of the same "
        "file and revision is active, answers 200 with that one (the download to follow). 409 `not_retryable` "
        "when the download is active or completed; 403 `repo_not_allowed` / `file_too_large` when the source "
        "rules (MODELDESK_ALLOWED_REPOS, MODELDESK_MAX_FILE_BYTES) no longer allow it.",
        tags=["modelfiles"],
        parameters=[DOWNLOAD_ID],
        request=None,
        responses={
            200: OpenApiResponse(DownloadSerializer, description="Queued again, or the newer active download."),
            409: OpenApiResponse(DownloadConflictSerializer, description="Not failed or cancelled (`not_retryable`)."),
            **error_responses(401, 403, 404),
        },
    )
    def post(self, request: Request, download_id: str) -> Response:
        download = _download_or_404(download_id)
        try:
            current, requeued = download_retry(download=download, by=request.user)
        except PullRefused as exc:
            raise _refused(exc) from exc
        if not requeued and current.pk == download.pk:
            raise _conflict(
                current,
                f"This download is {current.status}: only failed or cancelled downloads can be retried.",
                "not_retryable",
            )
        current = download_get(download_id=current.pk) or current
        return Response(DownloadSerializer(current).data, headers={"Location": _detail_url(current)})


# --- cache scan ----------------------------------------------------------------------------------------------------


class ScanSkippedSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="Relative to the Hugging Face cache folder (HF_HOME/hub); undecodable bytes and control "
        "characters are shown escaped (\\xNN, \\n)."
    )
    reason = serializers.CharField(help_text="Why the entry could not be listed.")


class ScanResultSerializer(serializers.Serializer):
    """What a scan changed. Entries it could not list are skipped and named in `skipped`; the rest landed."""

    created = serializers.IntegerField(min_value=0, help_text="Files listed for the first time.")
    updated = serializers.IntegerField(min_value=0, help_text="Files whose size, blob, refs or time changed.")
    removed = serializers.IntegerField(min_value=0, help_text="Files no longer in the cache.")
    present = serializers.IntegerField(min_value=0, help_text="Files in the cache now.")
    skipped = ScanSkippedSerializer(many=True)


class ScanApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.rescan_cache"]}

    @extend_schema(
        operation_id="modelfiles_scan",
        summary="Rescan the local cache now",
        description="Brings the model file list in step with the Hugging Face cache, as the Rescan button does. "
        "An entry that cannot be listed (an odd or undecodable name, a broken link, a missing blob, a snapshot "
        "folder that is not a commit, a folder that is not a repo id) is skipped and reported in `skipped`; the "
        "rest of the scan lands. The counts are this server's cache; a worker of every other host's cache is "
        'asked to rescan it in the background (README "Several hosts"). Operators and admins.',
        tags=["modelfiles"],
        request=None,
        responses={200: ScanResultSerializer, **error_responses(401, 403)},
    )
    def post(self, request: Request) -> Response:
        counts = modelfile_sync(by=request.user)
        modelfile_sync_elsewhere()  # files per host: the other hosts' workers scan their own caches
        return Response(ScanResultSerializer(counts).data)


# --- delete --------------------------------------------------------------------------------------------------------

MODELFILE_ID = OpenApiParameter(
    "modelfile_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The file's id, as /api/modelfiles lists it."
)
FORCE = OpenApiParameter(
    "force",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="Delete even while user aliases load the file (they become unavailable). Default false.",
)
ALL_REVISIONS = OpenApiParameter(
    "all_revisions",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="Delete the file from every cached revision, not only this one. Default false.",
)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _flag(request: Request, name: str) -> bool:
    values = request.query_params.getlist(name)
    if len(values) > 1 or (values and values[0].lower() not in _TRUE + _FALSE):
        raise ApiError(f"{name} must be true or false, given once.", status=400, code="invalid_parameter", param=name)
    return bool(values) and values[0].lower() in _TRUE


class ModelFileInUseSerializer(serializers.Serializer):
    error = ApiErrorSerializer()
    aliases = serializers.ListField(
        child=serializers.CharField(), help_text="The user aliases that load the file and would become unavailable."
    )


class ModelFileDeleteApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"DELETE": ["modelfiles.delete_modelfile"]}
    http_method_names = ["delete", "options"]

    @extend_schema(
        operation_id="modelfiles_delete",
        summary="Delete a cached model file",
        description="Removes the file from the local cache through huggingface_hub's cache deletion (its revision, "
        "or with `all_revisions` every cached revision of it) and updates the list. 409 `in_use` names the user "
        "aliases that load it; `force=true` deletes anyway. 409 `downloading` while an active download writes it. "
        "Admins.",
        tags=["modelfiles"],
        parameters=[MODELFILE_ID, FORCE, ALL_REVISIONS],
        request=None,
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(
                ModelFileInUseSerializer,
                description="User aliases load it (`in_use`, `aliases` names them) or a download writes it "
                "(`downloading`, `aliases` empty).",
            ),
            **error_responses(400, 401, 403, 404),
        },
    )
    def delete(self, request: Request, modelfile_id: int) -> Response:
        # A number past the database's integer range matches no row (SQLite would raise on it).
        modelfile = ModelFile.objects.filter(pk=modelfile_id, present=True).first() if modelfile_id < 2**63 else None
        if modelfile is None:
            raise ApiError(f"No model file with id {modelfile_id!r}.", status=404, code="modelfile_not_found")
        force, all_revisions = _flag(request, "force"), _flag(request, "all_revisions")
        try:
            modelfile_delete(modelfile=modelfile, all_revisions=all_revisions, force=force, by=request.user)
        except ModelFileInUse as exc:
            raise ApiError(str(exc), status=409, code="in_use", body={"aliases": exc.aliases}) from exc
        except ModelFileBusy as exc:
            raise ApiError(str(exc), status=409, code="downloading", body={"aliases": []}) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- verification and updates (issue 8, items 6 and 7) --------------------------------------------------------------


def _modelfile_or_404(modelfile_id: str) -> ModelFile:
    valid = modelfile_id.isascii() and modelfile_id.isdecimal() and len(modelfile_id) <= 18
    modelfile = ModelFile.objects.filter(pk=int(modelfile_id)).first() if valid else None
    if modelfile is None:
        raise ApiError(f"No model file with id {modelfile_id[:40]!r}.", status=404, code="modelfile_not_found")
    return modelfile


class VerificationSerializer(serializers.ModelSerializer):
    """A re-hash of a cached file. `status`: queued, running, ok (the bytes match), corrupt (they do not: the file
    is marked corrupt), failed (it could not be checked: `error`)."""

    modelfile = serializers.IntegerField(source="modelfile_id", read_only=True, help_text="The model file's id.")
    algorithm = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = Verification
        fields = (
            "id",
            "modelfile",
            "status",
            "algorithm",
            "expected",
            "actual",
            "bytes_total",
            "bytes_done",
            "percent",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
        )
        read_only_fields = fields

    # Not an enum in the schema: the download's `verified` already names this choice set.
    @extend_schema_field(serializers.CharField(allow_null=True, help_text="sha256 or git-sha1; null until started."))
    def get_algorithm(self, verification: Verification) -> str | None:
        return verification.algorithm or None

    @extend_schema_field(serializers.FloatField(allow_null=True, help_text="0–100; null while the size is unknown."))
    def get_percent(self, verification: Verification) -> float | None:
        percent = verification.percent
        return None if percent is None else round(percent, 2)

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Why it could not be checked."))
    def get_error(self, verification: Verification) -> str | None:
        return verification.error_message or None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username of who asked for it."))
    def get_requested_by(self, verification: Verification) -> str | None:
        return verification.requested_by.get_username() if verification.requested_by else None


class VerificationStateSerializer(serializers.Serializer):
    modelfile = serializers.IntegerField(help_text="The model file's id.")
    state = serializers.CharField(help_text="The file's state: ok, or corrupt once a verification found other bytes.")
    verification = VerificationSerializer(allow_null=True, help_text="The latest verification; null when never.")


class ModelFileVerifyApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["modelfiles.view_modelfile"], "POST": ["modelfiles.verify_modelfile"]}

    @extend_schema(
        operation_id="modelfiles_verification_retrieve",
        summary="A model file's state and its latest verification, with progress while it runs",
        tags=["modelfiles"],
        parameters=[MODELFILE_ID],
        responses={200: VerificationStateSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, modelfile_id: str) -> Response:
        modelfile = _modelfile_or_404(modelfile_id)
        verification = modelfile.verifications.select_related("requested_by").order_by("-created_at", "-pk").first()
        data = {"modelfile": modelfile.pk, "state": modelfile.state, "verification": verification}
        return Response(VerificationStateSerializer(data).data)

    @extend_schema(
        operation_id="modelfiles_verify",
        summary="Verify a model file: re-hash it on a worker",
        description="Queues a re-hash of the file's blob against its sha256 (or git blob sha1) and answers 202 with "
        "the verification; poll GET for progress. If one is running already, answers 202 with that one. A "
        "mismatch marks the file `corrupt`. 409 `not_present` when the file is no longer in the cache. Operators "
        "and admins.",
        tags=["modelfiles"],
        parameters=[MODELFILE_ID],
        request=None,
        responses={202: VerificationSerializer, **error_responses(401, 403, 404, 409)},
    )
    def post(self, request: Request, modelfile_id: str) -> Response:
        modelfile = _modelfile_or_404(modelfile_id)
        try:
            verification, _ = verification_request(modelfile=modelfile, by=request.user)
        except DjangoValidationError as exc:
            raise ApiError(" ".join(exc.messages), status=409, code="not_present") from exc
        verification.refresh_from_db()
        return Response(VerificationSerializer(verification).data, status=status.HTTP_202_ACCEPTED)


class UpdateFoundSerializer(serializers.Serializer):
    modelfile = ModelFileSerializer(help_text="The file, with `update` set.")
    commit = serializers.CharField(help_text="The new commit.")


class CheckFailedSerializer(serializers.Serializer):
    modelfile = serializers.IntegerField(help_text="The model file's id.")
    message = serializers.CharField(help_text="The Hub's answer.")


class CheckUpdatesResultSerializer(serializers.Serializer):
    checked = serializers.IntegerField(min_value=0, help_text="Files pulled by a branch or tag that were checked.")
    updates = UpdateFoundSerializer(many=True, help_text="The files with an update, and the new commit.")
    errors = CheckFailedSerializer(many=True, help_text="Files the Hub could not answer for.")


class CheckUpdatesApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.request_download"]}

    @extend_schema(
        operation_id="modelfiles_check_updates",
        summary="Ask the Hub whether the refs of the local files moved",
        description="For every local file pulled by a branch or tag, asks the Hub where that ref points now and "
        "whether the file changed there (another etag). Files with an update get `update` set and are listed "
        "with the new commit. When the Hub cannot be reached the check stops and the rest are in `errors`. "
        "Operators and admins.",
        tags=["modelfiles"],
        request=None,
        responses={200: CheckUpdatesResultSerializer, **error_responses(401, 403)},
    )
    def post(self, request: Request) -> Response:
        results = modelfile_check_updates(by=request.user, timeout=settings.HUB_PAGE_TIMEOUT_SECONDS)
        found = [result.modelfile for result in results if result.update_available]
        data = modelfiles_data(found)
        return Response(
            {
                "checked": len(results),
                "updates": [
                    {"modelfile": item, "commit": row.update_commit} for item, row in zip(data, found, strict=True)
                ],
                "errors": [{"modelfile": r.modelfile.pk, "message": r.error} for r in results if r.error],
            }
        )


class ModelFileUpdateApi(APIView):
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["modelfiles.request_download"]}

    @extend_schema(
        operation_id="modelfiles_update",
        summary="Pull the update the check found",
        description="Queues the download of the new commit (202 with the download); once it is in, verified, the "
        "ref moves to it and the aliases that follow the ref load the new file, while aliases pinned to the old "
        "commit stay. 200 with `download` null when the new commit was already local (only the ref moved). "
        "409 `no_update` when no update is known for the file (check first).",
        tags=["modelfiles"],
        parameters=[MODELFILE_ID],
        request=None,
        responses={
            202: OpenApiResponse(DownloadSerializer, description="The pull of the new revision, queued."),
            200: OpenApiResponse(ModelFileSerializer, description="Already local: the ref moved."),
            **error_responses(400, 401, 403, 404, 409),
        },
    )
    def post(self, request: Request, modelfile_id: str) -> Response:
        modelfile = _modelfile_or_404(modelfile_id)
        try:
            download, _ = modelfile_update(modelfile=modelfile, by=request.user)
        except NoUpdate as exc:
            raise ApiError(str(exc), status=409, code="no_update") from exc
        if download is None:
            modelfile.refresh_from_db()
            return Response(modelfiles_data([modelfile])[0])
        download = download_get(download_id=download.pk) or download
        return Response(
            DownloadSerializer(download).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": _detail_url(download)},
        )
