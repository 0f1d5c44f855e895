"""The one way to write to the audit log. Services call `audit_record` inside their own transaction, so an entry
exists exactly when the change it describes was committed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder

from config.audit.models import AuditEntry


def _plain(values: Mapping[str, Any] | None) -> dict | None:
    """JSON-safe copy (datetimes, uuids, decimals become strings) so any service can pass its values as they are."""
    if values is None:
        return None
    return json.loads(json.dumps(dict(values), cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    kind: str,
    action: str,
    object_id: object = "",
    object_repr: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Record one change. `actor` None (or anonymous) means the system: a worker, a scan, a command without a user."""
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry.objects.create(
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        kind=AuditEntry.Kind(kind),
        action=action[:32],
        object_id=str(object_id)[:64],
        object_repr=str(object_repr)[:255],
        before=_plain(before),
        after=_plain(after),
    )
