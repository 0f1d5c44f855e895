"""Bulk actions on many aliases at once (issue 9, item 2): set or clear a parameter, apply a preset, delete.

One transaction for the whole action, and each alias goes through the same service a single edit uses
(alias_update, preset_apply, alias_delete), so each one changed gets its own version and audit entry and is held to
every alias rule. A value the rules refuse stops the whole action: nothing is saved. Aliases that cannot be changed
(generated from a local file) or that someone changed since the selection was made are skipped, each with the
reason, and left as they are.

The selection is a list of names or the list's own search and filters (`search`, `source`, `repo`, `file`, read by
the same filterset as the list and the export). Two concurrency tokens guard it: the version each alias had when
it was read (`expected`), or the time the list was shown (`unchanged_since`: any alias saved after it is skipped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.http import HttpResponse

from aliases.models import CONTEXT_PARAMS, REQUEST_PARAMS, Alias
from aliases.presets.models import Preset
from aliases.presets.services import preset_apply
from aliases.services import AliasReadOnlyError, AliasVersionConflict, alias_delete, alias_update
from aliases.transfer import FORMATS
from aliases.transfer_api import export_response
from config.serving.exports import BULK_FORMAT_LABELS, BULK_FORMATS, bulk_export_response

# The fields a bulk "set" or "clear" may touch: the request and context parameters (a name, repo or file is one
# alias's own, never many aliases' at once).
BULK_FIELDS = (*REQUEST_PARAMS, *CONTEXT_PARAMS)
# The list's query parameters a filter may hold (the API's names; the page's search box is `q`).
FILTER_KEYS = ("search", "source", "repo", "file")
# Names per IN (...) query: under SQLite's 999-parameter floor.
NAME_BATCH = 500


class BulkAction(models.TextChoices):
    SET = "set", "Set a parameter"
    CLEAR = "clear", "Clear a parameter"
    APPLY_PRESET = "apply_preset", "Apply a preset"
    DELETE = "delete", "Delete"
    EXPORT = "export", "Export"


def export_formats() -> dict[str, str]:
    """{format: label} for "Export selected": the transfer formats, then the runtimes' (config/serving/exports.py)."""
    return {**{fmt: fmt for fmt in FORMATS}, **BULK_FORMAT_LABELS}


def export_selection(aliases: Any, fmt: str) -> HttpResponse:
    """The bulk export's file for the selected aliases (a queryset), in name order."""
    ordered = aliases.order_by("alias", "pk")
    if fmt in BULK_FORMATS:
        return bulk_export_response(ordered.iterator(chunk_size=1000), fmt)
    return export_response(ordered, fmt)


CHANGING_ACTIONS = (BulkAction.SET, BulkAction.CLEAR, BulkAction.APPLY_PRESET, BulkAction.DELETE)


class SkipCode(models.TextChoices):
    READ_ONLY = "read_only", "generated from a local file"
    CHANGED = "changed", "saved by someone since it was read"
    NOT_FOUND = "not_found", "no alias has that name"


@dataclass(frozen=True)
class BulkSkip:
    alias: str
    reason: str
    code: str  # a SkipCode


@dataclass
class BulkResult:
    action: str
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already held the values: no new version
    skipped: list[BulkSkip] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        changed, unchanged, skipped = len(self.changed), len(self.unchanged), len(self.skipped)
        return {"selected": changed + unchanged + skipped, "changed": changed, "unchanged": unchanged,
                "skipped": skipped}  # fmt: skip


@dataclass(frozen=True)
class BulkSelection:
    aliases: QuerySet[Alias]  # the aliases found, in the list's default order
    missing: list[str]  # names asked for that no alias has


def bulk_filter_aliases(filters: Mapping[str, Any]) -> QuerySet[Alias]:
    """The aliases the list shows for these query parameters (FILTER_KEYS), through the list's own filterset.

    A bad value raises ValidationError naming the parameter (e.g. `search` with `n_ctx:abc`)."""
    from aliases.transfer_api import EXPORT_FILTERS, exported_aliases

    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        expected = ", ".join(FILTER_KEYS)
        raise ValidationError({name: f"Unknown filter; expected one of: {expected}." for name in unknown})
    try:
        return exported_aliases(filters)
    except ValueError as exc:
        name, message = exc.args
        param = next((key for key, target in EXPORT_FILTERS.items() if target == name), name)
        raise ValidationError({param: message}) from exc


def bulk_selection(*, names: Sequence[str] | None = None, filters: Mapping[str, Any] | None = None) -> BulkSelection:
    """What a bulk action would act on: the aliases named (any case), or those the filters find."""
    if filters is not None:
        return BulkSelection(aliases=bulk_filter_aliases(filters), missing=[])
    wanted = {name.lower(): name for name in names or ()}
    found: dict[str, int] = {}
    lowered = sorted(wanted)
    for start in range(0, len(lowered), NAME_BATCH):
        found.update(
            Alias.objects.annotate(name_lower=Lower("alias"))
            .filter(name_lower__in=lowered[start : start + NAME_BATCH])
            .values_list("name_lower", "pk")
        )
    missing = [name for lower, name in wanted.items() if lower not in found]
    return BulkSelection(aliases=Alias.objects.filter(pk__in=list(found.values())), missing=missing)


def bulk_values(*, action: str, values: Mapping[str, Any] | Iterable[str] | None) -> dict[str, Any]:
    """The alias data a "set" or "clear" writes, checked field by field with the model's own validators before any
    alias is touched (so a bad value is refused even when every selected alias would be skipped)."""
    if action == BulkAction.CLEAR:
        names = list(values.keys() if isinstance(values, Mapping) else values or ())
        data: dict[str, Any] = {name: None for name in names}
    else:
        data = dict(values or {})
    if not data:
        raise ValidationError({"values": "Name at least one parameter."})
    unknown = [name for name in data if name not in BULK_FIELDS]
    if unknown:
        expected = ", ".join(BULK_FIELDS)
        raise ValidationError({name: f"Unknown field; expected one of: {expected}." for name in unknown})
    errors: dict[str, list[str]] = {}
    for name, value in data.items():
        model_field = Alias._meta.get_field(name)
        if value is None:
            value = None if model_field.null else model_field.get_default()  # unset: null, or stop [] / user ""
        try:
            data[name] = model_field.clean(value, None)
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)
    return data


def _locked(selection: BulkSelection) -> list[Alias]:
    pks = list(selection.aliases.values_list("pk", flat=True))
    rows: list[Alias] = []
    for start in range(0, len(pks), NAME_BATCH):
        rows += (
            # Only the aliases are locked: PostgreSQL refuses FOR UPDATE over the nullable side of the join to
            # updated_by, which is read for the skip reasons.
            Alias.objects.select_for_update(of=("self",))
            .filter(pk__in=pks[start : start + NAME_BATCH])
            .select_related("updated_by")
        )
    return sorted(rows, key=lambda alias: (alias.alias.lower(), alias.pk))


def _refused(alias: Alias, exc: ValidationError) -> ValidationError:
    """The rules' refusal, each message saying which alias it is about; the fields stay named."""
    if hasattr(exc, "error_dict"):
        return ValidationError({name: [f"{alias.alias}: {message}" for message in messages]
                                for name, messages in exc.message_dict.items()})  # fmt: skip
    return ValidationError([f"{alias.alias}: {message}" for message in exc.messages])


def _changed_since(alias: Alias, since: datetime) -> BulkSkip:
    who = alias.updated_by.get_username() if alias.updated_by is not None else "someone else"
    return BulkSkip(
        alias=alias.alias,
        code=SkipCode.CHANGED,
        reason=f"changed by {who} at {alias.updated_at.isoformat(timespec='seconds')}, after the list was shown; "
        "left as they saved it.",
    )


def _conflicted(alias: Alias, conflict: AliasVersionConflict) -> BulkSkip:
    return BulkSkip(
        alias=alias.alias,
        code=SkipCode.CHANGED,
        reason=f"changed by {conflict.changed_by} since it was read (version {conflict.expected_version}, now "
        f"{conflict.current.version}); left as they saved it.",
    )


def _read_only(alias: Alias) -> BulkSkip:
    return BulkSkip(alias=alias.alias, code=SkipCode.READ_ONLY, reason="read-only: generated from a local model file.")


@transaction.atomic
def alias_bulk_apply(
    *,
    action: str,
    selection: BulkSelection,
    by: AbstractBaseUser | None,
    values: Mapping[str, Any] | Iterable[str] | None = None,
    preset: Preset | None = None,
    expected: Mapping[str, int] | None = None,
    unchanged_since: datetime | None = None,
) -> BulkResult:
    """Run one changing action (set, clear, apply_preset, delete) on every selected alias, in one transaction.

    `expected` maps names (any case) to the version each was read at; `unchanged_since` skips aliases saved after
    that time. A ValidationError (a bad value, or one an alias's own values refuse) undoes everything.
    """
    if action not in CHANGING_ACTIONS:
        raise ValidationError(
            {"action": f"{action!r} changes nothing; expected one of: {', '.join(CHANGING_ACTIONS)}."}
        )
    data = bulk_values(action=action, values=values) if action in (BulkAction.SET, BulkAction.CLEAR) else {}
    if action == BulkAction.APPLY_PRESET and preset is None:
        raise ValidationError({"preset": "Choose the preset to apply."})
    versions = {name.lower(): version for name, version in (expected or {}).items()}
    result = BulkResult(action=action)
    result.skipped += [BulkSkip(alias=name, code=SkipCode.NOT_FOUND, reason=f"No alias named {name!r}.")
                       for name in selection.missing]  # fmt: skip
    for alias in _locked(selection):
        if alias.is_read_only:
            result.skipped.append(_read_only(alias))
            continue
        if unchanged_since is not None and alias.updated_at > unchanged_since:
            result.skipped.append(_changed_since(alias, unchanged_since))
            continue
        expected_version = versions.get(alias.alias.lower(), alias.version)
        try:
            if action == BulkAction.DELETE:
                alias_delete(alias=alias, by=by, expected_version=expected_version)
                result.changed.append(alias.alias)
                continue
            if action == BulkAction.APPLY_PRESET:
                saved = preset_apply(alias=alias, preset=preset, by=by, expected_version=expected_version)
            else:
                saved = alias_update(alias=alias, data=data, expected_version=expected_version, by=by)
        except AliasReadOnlyError:
            result.skipped.append(_read_only(alias))
            continue
        except AliasVersionConflict as conflict:
            result.skipped.append(_conflicted(alias, conflict))
            continue
        except ValidationError as exc:
            raise _refused(alias, exc) from exc
        (result.changed if saved.version != alias.version else result.unchanged).append(alias.alias)
    return result
