"""JSON API for one's own API tokens: GET/POST /api/tokens, DELETE /api/tokens/<id> (every role)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.accounts.auth import BearerTokenAuthentication
from config.accounts.models import ApiToken, no_control_characters
from config.accounts.services import apitoken_issue, apitoken_revoke
from config.api import (
    ApiError,
    ErrorEnvelopeSerializer,
    ListQuery,
    StrictCharField,
    StrictSerializer,
    error_responses,
    list_envelope_serializer,
    model_sorts,
)

TOKEN_LIST_QUERY = ListQuery(
    sorts=model_sorts(ApiToken, ("created_at", "name", "last_used_at", "expires_at")),
    default_sort="created_at",
    default_sort_order="desc",
    search_help="Case-insensitive text to find in the label or the prefix.",
)
THROTTLED = {
    429: OpenApiResponse(
        ErrorEnvelopeSerializer,
        description="Too many invalid bearer tokens from this address; Retry-After says when to try again.",
    )
}
TOKEN_ID = OpenApiParameter("token_id", int, OpenApiParameter.PATH, description="The token's id.")


class ApiTokenSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        validators=[no_control_characters],
        help_text="A label to tell tokens apart; no control characters.",
    )
    prefix = serializers.CharField(read_only=True, help_text="The token's first characters, to recognise it.")
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the token stops working (in the future); null: never.",
    )


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text="The token itself. Shown in this answer only: only its hash is stored."
    )


def _own_tokens(request: Request):
    return ApiToken.objects.filter(user=request.user).select_related("user")


class ApiTokenCollectionApi(APIView):
    @extend_schema(
        operation_id="tokens_list",
        summary="List your API tokens",
        tags=["tokens"],
        parameters=TOKEN_LIST_QUERY.openapi_parameters(),
        responses={200: list_envelope_serializer(ApiTokenSerializer), **error_responses(400, 401), **THROTTLED},
    )
    def get(self, request: Request) -> Response:
        params = TOKEN_LIST_QUERY.parse(request.query_params)
        tokens = _own_tokens(request)
        if params.search:
            tokens = tokens.filter(name__icontains=params.search) | tokens.filter(prefix__icontains=params.search)
        page = TOKEN_LIST_QUERY.page(tokens, params)
        return Response(page.envelope(ApiTokenSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="tokens_create",
        summary="Create an API token (signed in with a session, not with a token)",
        description="The answer carries the token once. A bearer token cannot create tokens: a leaked token must "
        "not be able to outlive its own revocation.",
        tags=["tokens"],
        request=ApiTokenSerializer,
        responses={201: NewApiTokenSerializer, **error_responses(400, 401, 403, 415), **THROTTLED},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.successful_authenticator, BearerTokenAuthentication):
            raise ApiError(
                "Tokens are created from a browser session (the My API tokens page), not with another token.",
                status=403,
                code="session_required",
            )
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = apitoken_issue(
            user=request.user,
            name=serializer.validated_data["name"],
            expires_at=serializer.validated_data["expires_at"],
            actor=request.user,
        )
        data = NewApiTokenSerializer(token).data
        data["token"] = raw
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiTokenDetailApi(APIView):
    @extend_schema(
        operation_id="tokens_destroy",
        summary="Revoke one of your API tokens",
        tags=["tokens"],
        parameters=[TOKEN_ID],
        responses={204: None, **error_responses(401, 404), **THROTTLED},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        token = _own_tokens(request).filter(pk=token_id).first()
        if token is None:
            raise ApiError(f"You have no API token with id {token_id}.", status=404, code="token_not_found")
        apitoken_revoke(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
