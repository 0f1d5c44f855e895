"""Helpers for the audit log tests."""

from __future__ import annotations

import itertools

from config.audit.models import AuditEntry
from config.audit.services import audit_record

_numbers = itertools.count(1)


def make_entry(*, actor=None, kind: str = "alias", action: str = "update", **fields) -> AuditEntry:
    """An entry written the one way services write them."""
    number = next(_numbers)
    values = {
        "object_id": str(number),
        "object_repr": f"entry-object-{number:04d}",
        "before": {"temperature": 0.5},
        "after": {"temperature": 0.7},
    }
    values.update(fields)
    return audit_record(actor=actor, kind=kind, action=action, **values)
