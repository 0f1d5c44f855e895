"""What the console shows: a refused request is one line, not a traceback; a server error keeps its traceback; the
favicon is served, so browsers asking for it log nothing."""

from __future__ import annotations

import logging

import pytest

from config.logs import NoTracebackForClientErrors

pytestmark = pytest.mark.django_db


def record(level: int) -> logging.LogRecord:
    try:
        raise PermissionError("refused")
    except PermissionError:
        import sys

        return logging.LogRecord("django.request", level, __file__, 1, "Forbidden: /x", (), sys.exc_info())


def test_client_errors_lose_their_traceback_server_errors_keep_it():
    handler_filter = NoTracebackForClientErrors()
    warning, error = record(logging.WARNING), record(logging.ERROR)
    assert handler_filter.filter(warning) and handler_filter.filter(error)
    assert warning.exc_info is None
    assert error.exc_info is not None
    formatted = logging.Formatter().format(warning)
    assert "Traceback" not in formatted and "Forbidden: /x" in formatted


def test_the_console_handler_filters_client_tracebacks():
    console = logging.getLogger().handlers[0]
    assert any(isinstance(f, NoTracebackForClientErrors) for f in console.filters)


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    page = client.get("/login/").content.decode()
    assert 'rel="icon"' in page
