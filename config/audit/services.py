"""The one way to write to the audit log. Services call `audit_record` inside their own transaction, so an entry
exists exactly when the change it describes was committed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder

from config.audit.models import AuditEntry
from config.audit.signals import changes_recorded
from config.bulk import bulk_insert


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
    values = _entry_values(AuditRecord(kind=kind, action=action, actor=actor, object_id=object_id,
                                       object_repr=object_repr, before=before, after=after))  # fmt: skip
    entry = AuditEntry(actor_id=values.pop("actor"), **values)
    entry.save(force_insert=True)
    _changed([values["kind"]])
    return entry


def _changed(kinds: Iterable[str]) -> None:
    changes_recorded.send(sender=AuditEntry, kinds=frozenset(kinds))


def _entry_values(record: AuditRecord) -> dict[str, Any]:
    """The fields of the entry for `record` (the time is set where it is written)."""
    user = record.actor if record.actor is not None and record.actor.is_authenticated else None
    return {
        "actor": user.pk if user is not None else None,
        "actor_name": user.get_username() if user is not None else "",
        "kind": AuditEntry.Kind(record.kind).value,
        "action": record.action[:32],
        "object_id": str(record.object_id)[:64],
        "object_repr": str(record.object_repr)[:255],
        "before": _plain(record.before),
        "after": _plain(record.after),
    }


@dataclass(frozen=True)
class AuditRecord:
    """One entry for audit_record_many: the same fields as audit_record's."""

    kind: str
    action: str
    actor: AbstractBaseUser | None = None
    object_id: object = ""
    object_repr: str = ""
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


# Entries per INSERT: a scan that generates thousands of aliases writes their entries in a few statements.
AUDIT_BATCH = 500


def audit_record_many(records: Iterable[AuditRecord]) -> int:
    """Record many changes at once (the entries audit_record would write, in batched INSERTs); how many."""
    # Plain rows for one prepared INSERT (config/bulk.py): a first scan writes thousands of entries.
    rows = [_entry_values(record) for record in records]
    _changed({row["kind"] for row in rows})
    return bulk_insert(AuditEntry, rows, batch_size=AUDIT_BATCH)
