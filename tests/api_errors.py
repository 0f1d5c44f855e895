"""The API error envelope as DESIGN.md states it, checked the same way by every API test."""

from __future__ import annotations

ERROR_TYPES = {
    "invalid_request_error",
    "not_found_error",
    "authentication_error",
    "forbidden_error",
    "conflict_error",
    "internal_server_error",
}


def assert_error(response, status: int, error_type: str, *, code: str | None = None, param: object = ...) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert {"message", "type", "code", "param"} <= set(error)
    assert error["type"] == error_type and error_type in ERROR_TYPES
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not ...:
        assert error["param"] == param
    return error
