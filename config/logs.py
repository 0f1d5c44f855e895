"""Logging that tells a person what to act on: one line for a refused request, not a traceback."""

from __future__ import annotations

import logging


class NoTracebackForClientErrors(logging.Filter):
    """Django logs a 403 (PermissionDenied) or 404 with the exception that made it; for a client's error the one
    line saying which path and why is the whole story. Server errors (5xx, ERROR) keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
