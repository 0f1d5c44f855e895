from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from rest_framework import authentication, exceptions

from config.accounts.addresses import client_address
from config.accounts.services import (
    INVALID_TOKEN_MESSAGE,
    TokenRefused,
    apitoken_verify,
    bearerfailure_record,
    bearerfailure_wait,
)


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every sign-in that comes with a request (the login page, the Django admin).

    A call without a request is no guess from the network: the test client's `login()` or a script calling
    `authenticate()` directly. django-axes would raise for those; here they go on to the password check.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class TooManyTokenFailures(exceptions.Throttled):
    default_code = "too_many_token_failures"

    def __init__(self, wait: int):
        super().__init__(
            wait=wait,
            detail=f"Too many invalid API tokens from your address. Try again in {wait} seconds.",
            code=self.default_code,
        )


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a key made on the My API tokens page or by `manage.py apitoken`.

    Failures are counted per client address; past API_TOKEN_FAILURE_LIMIT in the window the answer is 429 with
    Retry-After, before the token is even looked up, so guessing costs the guesser time and us nothing.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        address = client_address(request._request)
        wait = bearerfailure_wait(address=address)
        if wait:
            raise TooManyTokenFailures(wait)
        try:
            return self._verify(header)
        except exceptions.AuthenticationFailed:
            bearerfailure_record(address=address)
            raise

    def _verify(self, header: list[bytes]):
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from exc
        try:
            token = apitoken_verify(raw=raw)
        except TokenRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused) or INVALID_TOKEN_MESSAGE) from refused
        return (token.user, token)

    def authenticate_header(self, request) -> str:
        return self.keyword
