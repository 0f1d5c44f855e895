"""`changes_recorded`: sent once per call that records changes, with the kinds recorded (`kinds`, a set of
AuditEntry.Kind values). Every change to an alias, a file or a download is recorded, so this is the one place
that hears of them all; other parts (the llama-server preset) listen here instead of being called from audit."""

from __future__ import annotations

from django.dispatch import Signal

changes_recorded = Signal()
