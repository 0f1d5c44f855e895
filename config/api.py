"""What every JSON endpoint shares: the error envelope, strict request fields, permissions and list paging.

Error bodies always look like DESIGN.md's ``{"error": {"message", "type", "code", "param"}}``, whatever raised them:
DRF's own parse/auth/permission errors, Django ``ValidationError`` from a service, ``ApiError`` raised by a view,
or an unexpected exception (logged, answered with a 500 envelope rather than an HTML page).

Lists declare their paging, sorting and search once with ``ListQuery``; the same object parses the query string,
orders and slices the queryset, builds the ``{"data", "total", "page", "page_size"}`` envelope and documents the
parameters in the OpenAPI schema.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models.expressions import OrderBy
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, JsonResponse, QueryDict
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object, force_instance
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, permissions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from config.paging import page_rows

logger = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
NOT_FOUND = "not_found_error"
AUTHENTICATION = "authentication_error"
FORBIDDEN = "forbidden_error"
CONFLICT = "conflict_error"
INTERNAL = "internal_server_error"
ERROR_TYPES = (INVALID_REQUEST, NOT_FOUND, AUTHENTICATION, FORBIDDEN, CONFLICT, INTERNAL)
_TYPE_BY_STATUS = {401: AUTHENTICATION, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT}

UNKNOWN_FIELD = "unknown_field"
INTERNAL_MESSAGE = (
    "Something went wrong on the server; the error was logged. Try again, and tell an admin if it persists."
)


def error_type(status: int) -> str:
    if status >= 500:
        return INTERNAL
    return _TYPE_BY_STATUS.get(status, INVALID_REQUEST)


def error_body(*, status: int, message: str, code: str, param: str | None = None, **details: Any) -> dict:
    return {
        "error": {"message": message, "type": error_type(status), "code": code, "param": param, **details},
    }


class ApiError(exceptions.APIException):
    """An error a view answers with on purpose.

    ``details`` go inside the ``error`` object (e.g. ``fields``); ``body`` adds top-level keys beside it
    (e.g. ``current`` on a version conflict).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        param: str | None = None,
        details: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.message = message
        self.code = code
        self.param = param
        self.details = dict(details or {})
        self.body = dict(body or {})

    def response_data(self) -> dict:
        data = error_body(
            status=self.status_code, message=self.message, code=self.code, param=self.param, **self.details
        )
        data.update(self.body)
        return data


# --- validation errors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    field: str | None  # None: about the request as a whole
    message: str
    code: str


def validation_error(errors: Sequence[FieldError]) -> ApiError:
    """One 400 naming every bad field: the message lists them all, ``param`` is the first, ``fields`` has each."""
    # Unknown fields lead, so `param` and `code` point at the mistake that is usually the cause of the others.
    ordered = sorted(errors, key=lambda error: error.code != UNKNOWN_FIELD)
    fields: dict[str, list[str]] = {}
    parts = []
    for error in ordered:
        text = error.message.rstrip(".")
        parts.append(f"{error.field}: {text}" if error.field else text)
        if error.field:
            fields.setdefault(error.field, []).append(error.message)
    first = ordered[0] if ordered else FieldError(None, "Invalid request.", "invalid")
    details = {"fields": fields} if fields else {}
    return ApiError(
        "; ".join(parts) or first.message,
        status=400,
        code=first.code,
        param=next((error.field for error in ordered if error.field), None),
        details=details,
    )


def _django_field_errors(exc: DjangoValidationError) -> Iterator[FieldError]:
    error_dict = exc.error_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.error_list}
    for field, error_list in error_dict.items():
        for error in error_list:
            message = error.message % error.params if error.params else error.message
            yield FieldError(None if field == NON_FIELD_ERRORS else field, str(message), error.code or "invalid")


def _drf_field_errors(detail: Any, field: str | None = None, prefix: str = "") -> Iterator[FieldError]:
    """Flatten DRF's nested error detail; nested keys are reported by their bare name (``temperature``)."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                yield from _drf_field_errors(value, field, prefix)
            elif isinstance(key, int):  # an item of a list field: report the list, say which item
                yield from _drf_field_errors(value, field, f"{prefix}item {key + 1}: ")
            else:
                yield from _drf_field_errors(value, str(key), prefix)
    elif isinstance(detail, list):
        for item in detail:
            yield from _drf_field_errors(item, field, prefix)
    else:
        yield FieldError(field, prefix + str(detail), getattr(detail, "code", None) or "invalid")


def django_validation_error(exc: DjangoValidationError) -> ApiError:
    return validation_error(list(_django_field_errors(exc)))


# --- the exception handler -------------------------------------------------------------------------------------


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every error, expected or not, as the DESIGN.md envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, DjangoValidationError):
        exc = django_validation_error(exc)
    elif isinstance(exc, exceptions.ValidationError):
        exc = validation_error(list(_drf_field_errors(exc.detail)))

    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        status, data = exc.status_code, exc.response_data()
    elif isinstance(exc, exceptions.APIException):
        status = exc.status_code
        code = exc.get_codes() if isinstance(exc.detail, str) else exc.default_code
        message = str(exc.detail) if status < 500 else INTERNAL_MESSAGE
        data = error_body(status=status, message=message, code=str(code))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(math.ceil(exc.wait))
    else:
        request = context.get("request")
        logger.error(
            "Unhandled exception in API view %s %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            exc_info=exc,
        )
        status, data = 500, error_body(status=500, message=INTERNAL_MESSAGE, code="internal_error")
    set_rollback()
    return Response(data, status=status, headers=headers)


def request_too_large() -> ApiError:
    from config.api_parsers import body_limit, body_too_large_message

    return ApiError(body_too_large_message(body_limit() or 0), status=413, code="request_too_large")


def error_json_response(*, status: int, message: str, code: str, param: str | None = None) -> JsonResponse:
    """The envelope outside DRF views: Django's 404/500 handlers and the request limits, for /api/ and /v1/."""
    return JsonResponse(error_body(status=status, message=message, code=code, param=param), status=status)


# The JSON API and the OpenAI-compatible gateway: both answer errors with the envelope, never a page.
API_PREFIXES = ("/api/", "/v1/")


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIXES)


# --- strict request fields -------------------------------------------------------------------------------------


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _wrong_type(expected: str, value: object) -> serializers.ValidationError:
    return serializers.ValidationError(f"Expected {expected} (got {_json_kind(value)}).", code="invalid_type")


class _DocumentedRange:
    """``schema_range=(low, high)`` is shown in the OpenAPI schema only.

    The model's validators enforce the real rule (which may have special values outside the range, like n_ctx 0);
    setting the attributes after ``__init__`` keeps DRF from adding validators of its own.
    """

    def _document_range(self, schema_range: tuple[float, float] | None) -> None:
        if schema_range is not None:
            self.min_value, self.max_value = schema_range


class StrictFloatField(_DocumentedRange, serializers.FloatField):
    """A JSON number only: no numeric strings, no booleans, nothing infinite."""

    def __init__(self, *, schema_range: tuple[float, float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._document_range(schema_range)

    def to_internal_value(self, data: object) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise _wrong_type("a number", data)
        try:
            value = float(data)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise serializers.ValidationError("Enter a finite number.", code="not_finite")
        return value


class StrictIntegerField(_DocumentedRange, serializers.IntegerField):
    """A JSON integer only: ``1.5``, ``1.0``, ``"1"`` and booleans are refused."""

    def __init__(self, *, schema_range: tuple[int, int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._document_range(schema_range)

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _wrong_type("an integer", data)
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only, kept as sent (no trimming): the model's validators judge its content.

    ``request_schema`` adds keywords to the field's schema in requests only (``pattern``, ``minLength``, ...): the
    rules the model enforces on what is sent, stated where schema-driven clients look. Responses may carry rows
    stored before a rule existed, so they are not promised to match.
    """

    def __init__(self, *, request_schema: Mapping[str, Any] | None = None, **kwargs: Any):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.request_schema = dict(request_schema or {})

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            raise _wrong_type("a string", data)
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare (read-only ones are accepted and ignored), reported with the others."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list] = {}
        if isinstance(data, Mapping):
            known = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            unknown = {
                str(name): [serializers.ErrorDetail(f"Unknown field; expected one of: {known}.", code=UNKNOWN_FIELD)]
                for name in data
                if name not in self.fields
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, Mapping):
                raise serializers.ValidationError({**unknown, **exc.detail}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- permissions -----------------------------------------------------------------------------------------------


class ModelPermissions(permissions.DjangoModelPermissions):
    """Django model permissions for every method, reads included (``<app>.view_<model>``).

    The view needs a ``queryset`` attribute naming the model.
    """

    message = "Your role does not allow this action. Ask an admin if you need it."
    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # the view answers 405, the same for every role
        return super().has_permission(request, view)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "config.accounts.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Bearer")


# --- lists: paging, sorting, search ----------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 100
SORT_ORDERS = ("asc", "desc")
# Any page past the end is simply empty; the bound keeps the offset a number every database takes.
MAX_PAGE = 10**15
NO_NUL_PATTERN = r"^[^\u0000]*$"
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Sort:
    """One sort key of a list: what to order by, and whether the column can hold NULL (those rows come last)."""

    expression: models.Expression
    nullable: bool = True


def model_sorts(
    model: type[models.Model], names: Sequence[str], *, ignore_case: Sequence[str] | None = None
) -> dict[str, Sort]:
    """Sort keys for ``ListQuery``: text columns sort case-insensitively (every one, or those in ``ignore_case``),
    others by value.

    ``NULLS LAST`` is asked for only where the column can hold NULL: on a NOT NULL column it changes nothing but
    keeps PostgreSQL from ordering by a plain ``(column, pk)`` index read backwards.
    """
    sorts: dict[str, Sort] = {}
    for name in names:
        field = model._meta.get_field(name)
        text = isinstance(field, models.CharField | models.TextField)
        folded = text and (ignore_case is None or name in ignore_case)
        sorts[name] = Sort(Lower(name) if folded else models.F(name), nullable=field.null)
    return sorts


@dataclass(frozen=True)
class ListParams:
    page: int
    page_size: int
    sort: str
    sort_order: str
    search: str

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    params: ListParams

    def envelope(self, data: list) -> dict:
        return {"data": data, "total": self.total, "page": self.params.page, "page_size": self.params.page_size}


class ListQuery:
    """One list endpoint's ``?page=&page_size=&sort=&sort_order=&search=``: parsing, ordering, slicing, docs."""

    def __init__(
        self,
        *,
        sorts: Mapping[str, Sort | models.Expression],
        default_sort: str,
        default_sort_order: str = "asc",
        search_help: str = "Case-insensitive text search.",
        sort_help: str = "Column to sort by; text sorts ignore case, unset values come last.",
    ):
        assert default_sort in sorts and default_sort_order in SORT_ORDERS
        self.sorts = {name: sort if isinstance(sort, Sort) else Sort(sort) for name, sort in sorts.items()}
        self.sort_help = sort_help
        self.default_sort = default_sort
        self.default_sort_order = default_sort_order
        self.search_help = search_help

    def parse(self, query: QueryDict) -> ListParams:
        """Read the query string; anything out of bounds is a 400 naming the parameter. Blank means default."""
        page = self._integer(query, "page", default=1, low=1, high=MAX_PAGE)
        page_size = self._integer(query, "page_size", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
        sort = query.get("sort") or self.default_sort
        if sort not in self.sorts:
            raise _bad_param("sort", f"Unknown sort {sort!r}; use one of: {', '.join(self.sorts)}.")
        sort_order = query.get("sort_order") or self.default_sort_order
        if sort_order not in SORT_ORDERS:
            raise _bad_param("sort_order", f"sort_order must be asc or desc (got {sort_order!r}).")
        search = query.get("search", "")
        if "\x00" in search:
            raise _bad_param("search", "search may not contain NUL characters.")
        return ListParams(page=page, page_size=page_size, sort=sort, sort_order=sort_order, search=search)

    @staticmethod
    def _integer(query: QueryDict, name: str, *, default: int, low: int, high: int | None) -> int:
        raw = query.get(name, "")
        if raw == "":
            return default
        allowed = f"between {low} and {high}" if high is not None else f"{low} or more"
        value = int(raw) if _INTEGER_RE.fullmatch(raw) and len(raw) <= 18 else None
        if value is None or value < low or (high is not None and value > high):
            raise _bad_param(name, f"{name} must be an integer {allowed} (got {raw!r}).")
        return value

    def order_by(self, params: ListParams) -> list[OrderBy]:
        sort = self.sorts[params.sort]
        descending = params.sort_order == "desc"
        # Unset values last either way; the primary key breaks ties so pages never repeat or skip rows.
        return [
            OrderBy(sort.expression, descending=descending, nulls_last=True if sort.nullable else None),
            OrderBy(models.F("pk"), descending=descending),
        ]

    def page(self, queryset: models.QuerySet, params: ListParams) -> Page:
        """Two queries whatever the page size: a count and one page of rows (none past the end).

        The rows are read as config.paging does it: keys first from the index of the sort, from the nearer end.
        """
        total = queryset.count()
        if params.offset >= total:
            return Page(items=[], total=total, params=params)
        rows = page_rows(
            queryset.order_by(*self.order_by(params)), offset=params.offset, limit=params.page_size, total=total
        )
        return Page(items=rows, total=total, params=params)

    def openapi_parameters(self) -> list[OpenApiParameter]:
        query = OpenApiParameter.QUERY
        return [
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                query,
                description="Page number, 1 or more (default 1). Past the last page, `data` is empty.",
                default=1,
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
                query,
                description=f"Rows per page, 1–{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
                default=DEFAULT_PAGE_SIZE,
            ),
            OpenApiParameter(
                "sort",
                str,
                query,
                enum=list(self.sorts),
                default=self.default_sort,
                description=self.sort_help,
            ),
            OpenApiParameter(
                "sort_order",
                str,
                query,
                enum=list(SORT_ORDERS),
                default=self.default_sort_order,
                description="asc or desc.",
            ),
            OpenApiParameter(
                "search",
                {"type": "string", "pattern": NO_NUL_PATTERN},
                query,
                description=f"{self.search_help} No NUL characters.",
            ),
        ]


def _bad_param(name: str, message: str) -> ApiError:
    return ApiError(message, status=400, code="invalid_parameter", param=name)


# --- schema components -----------------------------------------------------------------------------------------


class ApiErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.ChoiceField(choices=ERROR_TYPES)
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. alias_not_found.")
    param = serializers.CharField(allow_null=True, help_text="The field or parameter at fault, or null.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # `fields` cannot be a class attribute: it would hide Serializer.fields.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors only: every bad field with its messages.",
        )
        return fields


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ApiErrorSerializer()


_ERROR_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, a bad parameter or field values (all named in the error).",
    401: "No credentials or invalid ones (WWW-Authenticate: Bearer).",
    403: "Authenticated, but this action is not allowed.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict with the current state.",
    413: "The request body is larger than the server accepts (MODELDESK_MAX_BODY_BYTES, 1 MiB by default).",
    415: "Unsupported media type: send application/json.",
    429: "Too many requests (e.g. failed sign-ins with bad tokens): wait for the seconds in Retry-After.",
    500: "Server error (logged).",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``extend_schema(responses=...)`` entries for error statuses, all with the error envelope."""
    return {
        status: OpenApiResponse(ErrorEnvelopeSerializer, description=_ERROR_DESCRIPTIONS[status]) for status in statuses
    }


@cache
def list_envelope_serializer(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of ``{"data": [item...], "total", "page", "page_size"}``, one component per item type."""
    name = item.__name__.removesuffix("Serializer") + "ListSerializer"
    return type(
        name,
        (serializers.Serializer,),
        {
            "__module__": item.__module__,
            "__doc__": "One page of rows, the total count of matching rows, and the page asked for.",
            "data": item(many=True),
            "total": serializers.IntegerField(help_text="Rows matching the search, over all pages."),
            "page": serializers.IntegerField(),
            "page_size": serializers.IntegerField(),
        },
    )


# --- the schema: every rule the API enforces -------------------------------------------------------------------

_BODY_METHODS = ("POST", "PUT", "PATCH")


class ApiAutoSchema(AutoSchema):
    """REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]: drf-spectacular's schema plus what every endpoint here shares.

    - ``request_schema`` of a field (see StrictCharField) is added to its request schema;
    - each operation lists the error statuses it can answer, all with the error envelope: 400 when it takes
      parameters or a body, 401/403/429 behind authentication, 404 with a path parameter, 413 when it takes a body,
      415 when the body must be JSON. Statuses a view documents itself (e.g. a 409 with ``current``) are kept.
      405 is not listed: it is the answer for a method the path does not document at all.
    """

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        extra = getattr(field, "request_schema", None)
        if extra and direction == "request" and isinstance(schema, dict) and "$ref" not in schema:
            schema = {**schema, **extra}
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(force_instance(serializer), StrictSerializer):
            # StrictSerializer refuses unknown keys, but takes the read-only ones (a body read with GET may be
            # sent back whole) and ignores them: say both.
            properties = schema.setdefault("properties", {})
            for name, field in force_instance(serializer).fields.items():
                if field.read_only:
                    properties[name] = {"description": "Read-only: accepted and ignored in requests."}
                    if name in schema.get("required", ()):
                        schema["required"].remove(name)
            schema["additionalProperties"] = False
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers "" as an alternative for a blank-allowed string with a pattern. A request_schema
        # decides about "" itself (minLength 1 where the model refuses it, a pattern that admits it where it is
        # fine), so the alternative would be a false promise or a repetition.
        extra = getattr(field, "request_schema", None) or {}
        alternatives = schema.get("oneOf")
        blank = {"type": "string", "maxLength": 0}
        if ("pattern" in extra or "minLength" in extra) and alternatives and alternatives[-1] == blank:
            schema.pop("oneOf")
            schema.update(alternatives[0])

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        parameters = operation.get("parameters", [])
        statuses: list[int] = []
        if parameters or "requestBody" in operation:
            statuses.append(400)
        if self._requires_authentication():
            statuses += [401, 403, 429]
        if any(parameter.get("in") == "path" for parameter in parameters):
            statuses.append(404)
        if self.method in _BODY_METHODS:
            statuses.append(413)
            if "requestBody" in operation:
                statuses.append(415)
        for status in sorted(statuses):
            if str(status) not in responses:
                response = OpenApiResponse(ErrorEnvelopeSerializer, description=_ERROR_DESCRIPTIONS[status])
                responses[str(status)] = self._get_response_for_code(response, str(status))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _requires_authentication(self) -> bool:
        return any(not isinstance(permission, permissions.AllowAny) for permission in self.view.get_permissions())
