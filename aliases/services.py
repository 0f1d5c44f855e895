"""Every write to an alias goes through here: pages, the API, the admin and commands call these functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from aliases.file_status import alias_file_problems
from aliases.models import EDITABLE_FIELDS, Alias, AliasChange
from config.audit.services import AuditRecord, audit_record, audit_record_many
from config.bulk import bulk_insert, bulk_update_rows


class AliasReadOnlyError(Exception):
    """Aliases generated from local model files (source=model) are not edited; copy them instead."""

    def __init__(self, alias: Alias):
        self.alias = alias
        super().__init__(
            f"'{alias.alias}' is generated from a local model file and is read-only; duplicate it to make "
            "an alias you can edit."
        )


@dataclass(frozen=True)
class FieldChange:
    field: str
    theirs: Any  # the value now saved
    base: Any  # the value when the editor loaded the form


class AliasVersionConflict(Exception):
    """The alias changed since the editor read it; carries what changed so the editor can decide.

    `conflicts` names the fields both sides changed to different values (the ones that need a choice), when the
    editor's values were known; `mergeable` says the base version is on record, so the other fields can merge.
    """

    def __init__(
        self,
        *,
        current: Alias,
        expected_version: int,
        changes: list[FieldChange],
        changed_by: str,
        conflicts: list[str] | None = None,
        mergeable: bool = False,
    ):
        self.current = current
        self.expected_version = expected_version
        self.changes = changes
        self.changed_by = changed_by
        self.conflicts = conflicts or []
        self.mergeable = mergeable
        names = ", ".join(change.field for change in changes) or "no field values"
        super().__init__(
            f"'{current.alias}' was changed by {changed_by} since you opened it (you edited version "
            f"{expected_version}, it is now version {current.version}; changed: {names}). Nothing was saved."
        )


class AliasRestoreError(Exception):
    """A deleted alias cannot come back under its name (taken again) or was never deleted."""

    def __init__(self, message: str, *, code: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class MergeResult:
    alias: Alias
    applied: list[str]  # your changed fields that were saved
    kept_theirs: list[str]  # fields the other person changed that were kept as they saved them
    changed: bool = True  # False when the values equal what is saved: no new version was written


def _user_or_none(by: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return by if by is not None and by.is_authenticated else None


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {
        name: [before.get(name), after.get(name)] for name in EDITABLE_FIELDS if before.get(name) != after.get(name)
    }


def _apply(alias: Alias, data: Mapping[str, Any]) -> None:
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    for name, value in data.items():
        setattr(alias, name, value)
    if alias.stop is None:
        alias.stop = []
    if alias.user is None:
        alias.user = ""


def _record(
    *, alias: Alias, action: str, changes: dict, by: AbstractBaseUser | None, before: Mapping[str, Any] | None = None
) -> None:
    """The alias's own history (AliasChange, for its page and conflict reports) and the one audit log."""
    deleted = action == AliasChange.Action.DELETE
    AliasChange.objects.create(
        alias=None if deleted else alias,
        alias_name=alias.alias,
        action=action,
        version=alias.version,
        changes=changes,
        snapshot=alias.values(),
        changed_by=_user_or_none(by),
    )
    _audit(alias=alias, action=action, by=by, before=before, after=None if deleted else alias.values())


def _audit(
    *,
    alias: Alias,
    action: str,
    by: AbstractBaseUser | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    audit_record(
        actor=by, kind="alias", action=action, object_id=alias.pk, object_repr=alias.alias, before=before, after=after
    )


def _save_checked(alias: Alias) -> None:
    alias.full_clean()
    if alias.source == Alias.Source.USER:
        # What the file's own header allows, when the file is local (a lookup of its ModelFile row, not the disk).
        problems = alias_file_problems(alias)
        if problems:
            raise ValidationError(problems)
    try:
        # A savepoint, so a unique race lost to another writer leaves the outer transaction usable.
        with transaction.atomic():
            alias.save()
    except IntegrityError as exc:
        # Two writers passed full_clean at the same moment; the database's unique index decided.
        if Alias.objects.by_name(alias.alias).exclude(pk=alias.pk).exists():
            raise ValidationError(
                {"alias": "An alias with this name already exists (names ignore case)."}, code="unique"
            ) from exc
        raise


@transaction.atomic
def alias_create(*, data: Mapping[str, Any], by: AbstractBaseUser | None) -> Alias:
    alias = Alias(source=Alias.Source.USER)
    _apply(alias, data)
    alias.created_by = alias.updated_by = _user_or_none(by)
    _save_checked(alias)
    _record(alias=alias, action=AliasChange.Action.CREATE, changes=_diff({}, alias.values()), by=by)
    return alias


def _base_snapshot(current: Alias, version: int) -> dict[str, Any] | None:
    record = AliasChange.objects.filter(alias=current, version=version).order_by("-pk").first()
    return None if record is None else record.snapshot


def _yours_changed(base: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name in EDITABLE_FIELDS and value != base.get(name)}


def _overlap(base: Mapping[str, Any], theirs: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """Fields both sides changed since `base`, to different values: only these need a choice."""
    theirs_changed = _diff(base, theirs)
    return [
        name for name, value in _yours_changed(base, data).items() if name in theirs_changed and value != theirs[name]
    ]


def _conflict(
    current: Alias, expected_version: int, data: Mapping[str, Any] | None = None, unresolved: list[str] | None = None
) -> AliasVersionConflict:
    base = _base_snapshot(current, expected_version)
    now = current.values()
    conflicts: list[str] = []
    if base is not None:
        changes = [FieldChange(field=name, theirs=new, base=old) for name, (old, new) in _diff(base, now).items()]
        if unresolved is not None:
            conflicts = unresolved
        elif data is not None:
            conflicts = _overlap(base, now, data)
    else:
        changes = []
        # Without the base version nothing says which side changed what: every field that differs needs a choice.
        if data is not None:
            conflicts = [name for name in EDITABLE_FIELDS if name in data and data[name] != now.get(name)]
    latest = AliasChange.objects.filter(alias=current).select_related("changed_by").first()
    changed_by = (
        latest.changed_by.get_username() if latest is not None and latest.changed_by is not None else "someone else"
    )
    return AliasVersionConflict(
        current=current,
        expected_version=expected_version,
        changes=changes,
        changed_by=changed_by,
        conflicts=conflicts,
        mergeable=base is not None,
    )


def _save_version(
    *, current: Alias, data: Mapping[str, Any], by: AbstractBaseUser | None, action: str = AliasChange.Action.UPDATE
) -> Alias:
    """Apply `data` to the locked row `current` and save it as a new version (no change, no version)."""
    before = current.values()
    _apply(current, data)
    changes = _diff(before, current.values())
    if not changes:
        return current
    current.version += 1
    current.updated_by = _user_or_none(by)
    _save_checked(current)
    _record(alias=current, action=action, changes=changes, by=by, before=before)
    return current


@transaction.atomic
def alias_update(*, alias: Alias, data: Mapping[str, Any], expected_version: int, by: AbstractBaseUser | None) -> Alias:
    """Apply `data` if the alias is still at `expected_version`; otherwise raise AliasVersionConflict.

    The row is locked first, so two editors saving at once cannot both pass the version check.
    """
    current = Alias.objects.select_for_update().get(pk=alias.pk)
    if current.is_read_only:
        raise AliasReadOnlyError(current)
    if current.version != expected_version:
        raise _conflict(current, expected_version, data)
    return _save_version(current=current, data=data, by=by)


@transaction.atomic
def alias_update_merged(
    *,
    alias: Alias,
    data: Mapping[str, Any],
    base_version: int,
    by: AbstractBaseUser | None,
    resolutions: Mapping[str, str] | None = None,
) -> MergeResult:
    """Save `data`, edited from `base_version`, merging field by field with what others saved since.

    Your fields that differ from the base version are applied on top of the current alias; fields only the others
    changed keep their values. A field both sides changed to different values needs `resolutions[field]`
    ("theirs" or "mine"); while any lacks one, AliasVersionConflict names them and nothing is saved. Without the
    base version on record, every field that differs from the current alias counts as changed by both.
    """
    current = Alias.objects.select_for_update().get(pk=alias.pk)
    if current.is_read_only:
        raise AliasReadOnlyError(current)
    version_before = current.version
    if current.version == base_version:
        before = current.values()
        saved = _save_version(current=current, data=data, by=by)
        applied = list(_diff(before, saved.values()))
        return MergeResult(alias=saved, applied=applied, kept_theirs=[], changed=saved.version != version_before)
    resolutions = resolutions or {}
    theirs = current.values()
    base = _base_snapshot(current, base_version)
    if base is None:
        overlap = [name for name in EDITABLE_FIELDS if name in data and data[name] != theirs.get(name)]
        yours = {name: data[name] for name in overlap}
        theirs_changed: list[str] = []
    else:
        overlap = _overlap(base, theirs, data)
        yours = _yours_changed(base, data)
        theirs_changed = list(_diff(base, theirs))
    unresolved = [name for name in overlap if resolutions.get(name) not in ("theirs", "mine")]
    if unresolved:
        raise _conflict(current, base_version, data, unresolved=unresolved)
    merged = {name: value for name, value in yours.items() if name not in overlap or resolutions[name] == "mine"}
    kept = [name for name in theirs_changed if name not in merged]
    saved = _save_version(current=current, data=merged, by=by)
    return MergeResult(alias=saved, applied=list(merged), kept_theirs=kept, changed=saved.version != version_before)


@transaction.atomic
def alias_delete(*, alias: Alias, by: AbstractBaseUser | None, expected_version: int | None = None) -> None:
    current = Alias.objects.select_for_update().filter(pk=alias.pk).first()
    if current is None:
        return  # already gone: deleting twice has one effect
    if current.is_read_only:
        raise AliasReadOnlyError(current)
    if expected_version is not None and current.version != expected_version:
        raise _conflict(current, expected_version)
    before = current.values()
    _record(alias=current, action=AliasChange.Action.DELETE, changes=_diff(before, {}), by=by, before=before)
    current.delete()


@transaction.atomic
def alias_revert(*, alias: Alias, version: int, by: AbstractBaseUser | None) -> Alias:
    """Make a new version of `alias` equal to its saved `version` (through the same checks as any save)."""
    current = Alias.objects.select_for_update().get(pk=alias.pk)
    if current.is_read_only:
        raise AliasReadOnlyError(current)
    snapshot = _base_snapshot(current, version)
    if snapshot is None:
        raise ValidationError({"version": f"'{current.alias}' has no saved version {version}."}, code="not_found")
    if version == current.version:
        raise ValidationError({"version": f"Version {version} is the current version; nothing to revert."})
    values = {name: snapshot[name] for name in EDITABLE_FIELDS if name in snapshot}
    return _save_version(current=current, data=values, by=by, action=AliasChange.Action.REVERT)


def alias_deleted_record(*, name: str) -> AliasChange | None:
    """The latest deletion of an alias called `name` (any case) that has not been restored since."""
    record = (
        AliasChange.objects.filter(action=AliasChange.Action.DELETE, alias__isnull=True)
        .annotate(name_lower=Lower("alias_name"))
        .filter(name_lower=name.lower())
        .order_by("-changed_at", "-pk")
        .first()
    )
    return record


@transaction.atomic
def alias_restore(*, name: str, by: AbstractBaseUser | None, new_name: str = "") -> Alias:
    """Bring a deleted alias back as it was when deleted, as a new version, under its name or `new_name`.

    Refused when the name is taken again (restore it under another name). Its history comes with it.
    """
    record = alias_deleted_record(name=name)
    if record is None:
        raise AliasRestoreError(f"No deleted alias named {name!r}.", code="not_deleted")
    target = new_name or record.alias_name
    if Alias.objects.by_name(target).exists():
        raise AliasRestoreError(
            f"An alias named {target!r} exists again; restore the deleted one under another name.", code="name_taken"
        )
    alias = Alias(source=Alias.Source.USER)
    _apply(alias, {name: record.snapshot[name] for name in EDITABLE_FIELDS if name in record.snapshot})
    alias.alias = target
    alias.version = record.version + 1
    alias.created_by = alias.updated_by = _user_or_none(by)
    _save_checked(alias)
    # The deleted alias's earlier versions (unlinked when its row went) belong to it again.
    # Only since the name's previous deletion: an older alias of the same name has versions of its own.
    history = (
        AliasChange.objects.filter(alias__isnull=True)
        .annotate(name_lower=Lower("alias_name"))
        .filter(name_lower=record.alias_name.lower(), pk__lte=record.pk)
    )
    previous = history.filter(action=AliasChange.Action.DELETE, pk__lt=record.pk).order_by("-pk").first()
    if previous is not None:
        history = history.filter(pk__gt=previous.pk)
    AliasChange.objects.filter(pk__in=list(history.values_list("pk", flat=True))).update(alias=alias)
    _record(alias=alias, action=AliasChange.Action.RESTORE, changes=_diff({}, alias.values()), by=by)
    return alias


def alias_copy_values(*, source: Alias, new_name: str = "") -> dict[str, Any]:
    """Initial values for a duplicate: everything but the name, which must be new."""
    values = source.values()
    values["alias"] = new_name
    return values


_QUANT_RE = re.compile(r"^(?:I?Q\d[A-Z0-9_]*|BF16|F16|F32|FP16|FP32|MXFP4)$", re.IGNORECASE)
_SHARD_RE = re.compile(r"-\d{5}-of-\d{5}$")


def model_alias_name(repo: str, filename: str) -> str:
    """`{repo}:{quant}` for a GGUF file: `TheBloke/Llama-2-7B-GGUF` + `llama-2-7b.Q4_K_M.gguf` → `…:Q4_K_M`."""
    stem = _SHARD_RE.sub("", filename.rsplit("/", 1)[-1][: -len(".gguf")])
    parts = re.split(r"[.\-]", stem)
    quant = next((part for part in reversed(parts) if _QUANT_RE.match(part)), None)
    if quant is None:
        quant = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "model"
    return f"{repo}:{quant[:63]}"


@dataclass(frozen=True)
class LocalModelFile:
    repo: str
    filename: str
    snapshot: str
    refs: tuple[str, ...] = ()


# Rows per INSERT / UPDATE / IN (...) of the model-file sync: well under SQLite's 999-parameter floor per statement
# for the narrow look-ups, and few enough round trips that a 10,000-file cache takes a few dozen.
SYNC_BATCH = 500


def _names_taken(names: list[str]) -> dict[str, int]:
    """The lower-cased names, among `names`, that some alias (user or generated) already has, with its key.

    One query per SYNC_BATCH names, filtered on LOWER(alias) so the case-insensitive unique index serves it (an
    `alias__iexact` look-up compiles to UPPER() or LIKE, which that index cannot serve: a scan of every alias).
    """
    taken: dict[str, int] = {}
    lowered = sorted({name.lower() for name in names})
    for start in range(0, len(lowered), SYNC_BATCH):
        batch = lowered[start : start + SYNC_BATCH]
        taken.update(
            Alias.objects.annotate(name_lower=Lower("alias"))
            .filter(name_lower__in=batch)
            .values_list("name_lower", "pk")
        )
    return taken


def _aliases_by_pk(pks: list[int]) -> list[Alias]:
    """Whole alias rows, locked, in one query per SYNC_BATCH keys."""
    rows: list[Alias] = []
    for start in range(0, len(pks), SYNC_BATCH):
        rows += Alias.objects.select_for_update().filter(pk__in=pks[start : start + SYNC_BATCH]).order_by("pk")
    return rows


@transaction.atomic
def alias_sync_model_files(
    *, files: list[LocalModelFile], repo: str | None = None, validated: bool = False
) -> dict[str, int]:
    """Keep one read-only `source=model` alias per local GGUF file (all repos, or those of one repo).

    User aliases are never touched. A name some other alias already has (ignoring case) gets no generated alias.
    Each alias created, moved or removed is audited. The writes go in batches (a few queries for any number of
    files); `validated` says the caller has already run the alias field checks on these exact names, repos,
    filenames and snapshots (modelfile_sync does, for every file), so they are not run twice.
    """
    wanted: dict[str, LocalModelFile] = {}
    # Preference among files sharing a name: the snapshot `main` points at, then the first shard of a split
    # file (the one llama.cpp opens), then a fixed order so repeated scans agree.
    for file in sorted(files, key=lambda f: ("main" not in f.refs, f.filename, f.snapshot)):
        wanted.setdefault(model_alias_name(file.repo, file.filename), file)
    generated = Alias.objects.select_for_update().filter(source=Alias.Source.MODEL)
    if repo is not None:
        generated = generated.filter(repo=repo)
    # Only the names and what the sync compares, as plain values: whole rows are read below for the aliases that
    # move or go (their audit entries carry every field), so an unchanged rescan builds no model instances.
    existing = {name: (pk, filename, snapshot) for name, pk, filename, snapshot in
                generated.values_list("alias", "pk", "filename", "snapshot")}  # fmt: skip
    taken = set(_names_taken([name for name in wanted if name not in existing]))
    to_create: list[Alias] = []
    moving: dict[int, LocalModelFile] = {}
    for name, file in wanted.items():
        stored = existing.pop(name, None)
        if stored is None:
            if name.lower() in taken:
                continue
            # A later name differing only in case would break the unique index: the first one keeps it.
            taken.add(name.lower())
            alias = Alias(alias=name, source=Alias.Source.MODEL, repo=file.repo, filename=file.filename,
                          snapshot=file.snapshot)  # fmt: skip
            if not validated:
                # The name was checked against every alias above and source/version are fixed: the constraint
                # checks (one query each) would only repeat that.
                alias.full_clean(validate_unique=False, validate_constraints=False)
            to_create.append(alias)
        elif stored[1:] != (file.filename, file.snapshot):
            moving[stored[0]] = file
    moved: list[tuple[Alias, dict]] = []
    for alias in _aliases_by_pk(list(moving)):
        file = moving[alias.pk]
        before = alias.values()
        alias.filename, alias.snapshot = file.filename, file.snapshot
        alias.version += 1
        if not validated:
            alias.full_clean(validate_unique=False, validate_constraints=False)
        moved.append((alias, before))
    # One prepared INSERT for all of them (config/bulk.py), then their keys by name (the audit entries name them).
    columns = [field for field in Alias._meta.concrete_fields if not field.primary_key]
    bulk_insert(Alias, [{field.name: getattr(alias, field.attname) for field in columns} for alias in to_create])
    keys = _names_taken([alias.alias for alias in to_create])
    for alias in to_create:
        alias.pk = keys[alias.alias.lower()]
    now = timezone.now()
    for alias, _before in moved:
        alias.updated_at = now  # auto_now is not applied by bulk_update
    Alias.objects.bulk_update(
        [alias for alias, _before in moved], ["filename", "snapshot", "version", "updated_at"], batch_size=SYNC_BATCH
    )
    gone = _aliases_by_pk([pk for pk, _filename, _snapshot in existing.values()])
    records = [AuditRecord(kind="alias", action="create", object_id=a.pk, object_repr=a.alias, after=a.values())
               for a in to_create]  # fmt: skip
    records += [AuditRecord(kind="alias", action="update", object_id=a.pk, object_repr=a.alias, before=before,
                            after=a.values()) for a, before in moved]  # fmt: skip
    # Recorded before the delete, while the rows still have their primary keys.
    records += [AuditRecord(kind="alias", action="delete", object_id=a.pk, object_repr=a.alias, before=a.values())
                for a in gone]  # fmt: skip
    audit_record_many(records)
    pks = [alias.pk for alias in gone]
    for start in range(0, len(pks), SYNC_BATCH):
        Alias.objects.filter(pk__in=pks[start : start + SYNC_BATCH]).delete()
    return {"created": len(to_create), "removed": len(gone)}


@dataclass
class ImportResult:
    rows: list  # aliases.transfer.ImportRow, one per row of the file
    counts: dict[str, int]
    applied: bool  # whether anything was written (False for a dry run or a refused import)


@transaction.atomic
def alias_import(
    *,
    rows: list[tuple[dict[str, Any], dict[str, str]]],
    by: AbstractBaseUser | None,
    on_conflict: str = "skip",
    valid_only: bool = False,
    dry_run: bool = False,
    fixes: Mapping[int, Any] | None = None,
) -> ImportResult:
    """Import parsed rows (aliases.transfer.parse) in one transaction.

    Nothing is written when any row has an error, unless `valid_only`: then the valid rows are. Each alias
    created or changed gets its own change record and audit entry, the ones alias_create / alias_update write when
    it is saved in the form; the writes go in batches (alias_import_apply).
    """
    from aliases.transfer import plan_counts, plan_import

    plan = plan_import(rows, on_conflict=on_conflict, fixes=fixes)
    counts = plan_counts(plan)
    if dry_run or (counts["error"] and not valid_only):
        return ImportResult(rows=plan, counts=counts, applied=False)
    alias_import_apply(plan=plan, by=by)
    return ImportResult(rows=plan, counts=counts, applied=True)


# Rows per locking SELECT, UPDATE batch and key look-up of an import (the sync's batch, for the same reasons).
IMPORT_BATCH = SYNC_BATCH


@transaction.atomic
def alias_import_apply(*, plan: list, by: AbstractBaseUser | None) -> None:
    """Write the creates and updates of an import plan (aliases.transfer.plan_import, made in this transaction):
    the records alias_create and alias_update would write row by row, in a few statements per IMPORT_BATCH rows.

    The plan has run every check those services run (the model's full_clean through the same validators, the file's
    header, the names ignoring case); what can still change since is guarded as they guard it: the aliases to
    update are locked and must still be at the version the plan read (else AliasVersionConflict, nothing saved),
    and a name another writer took meanwhile is refused by the unique index (a ValidationError naming it).
    """
    creates = [row for row in plan if row.action == "create"]
    updates = [row for row in plan if row.action == "update"]
    user = _user_or_none(by)
    now = timezone.now()
    # Per row number: (action, alias key, name, version, values after, changes, values before).
    records: dict[int, tuple[str, int, str, int, dict, dict, dict | None]] = {}

    locked = {alias.pk: alias for alias in _aliases_by_pk([row.target.pk for row in updates])}
    changed: list[Alias] = []
    for row in updates:
        current = locked.get(row.target.pk)
        if current is None:
            raise ValidationError(
                {"alias": f"'{row.target.alias}' was deleted while the import ran; nothing was imported."}
            )
        if current.is_read_only:
            raise AliasReadOnlyError(current)
        if current.version != row.target.version:
            raise _conflict(current, row.target.version, row.values)
        before = current.values()
        _apply(current, row.values)
        after = current.values()
        changes = _diff(before, after)
        if not changes:
            continue  # as _save_version: no change, no version
        current.version += 1
        current.updated_by = user
        current.updated_at = now  # auto_now is not applied by bulk_update
        changed.append(current)
        records[row.number] = (AliasChange.Action.UPDATE, current.pk, current.alias, current.version, after, changes,
                               before)  # fmt: skip
    written = [*EDITABLE_FIELDS, "version", "updated_by", "updated_at"]
    bulk_update_rows(Alias, [{"pk": alias.pk, **{name: getattr(alias, Alias._meta.get_field(name).attname)
                                                 for name in written}} for alias in changed], written)  # fmt: skip

    # New aliases as plain rows (config/bulk.py): what alias_create's _apply leaves on a new Alias, without
    # building one per row.
    blank = Alias(source=Alias.Source.USER)
    created: list[dict[str, Any]] = []
    for row in creates:
        # One instance serves every row that sets every field (a plan's rows do); a row that leaves some at their
        # defaults gets a fresh one.
        target = blank if len(row.values) == len(EDITABLE_FIELDS) else Alias(source=Alias.Source.USER)
        _apply(target, row.values)
        created.append(target.values())
    user_pk = user.pk if user is not None else None
    try:
        # A savepoint, so a name lost to another writer since the plan leaves the outer transaction usable.
        with transaction.atomic():
            bulk_insert(Alias, [{**values, "source": Alias.Source.USER, "created_by": user_pk,
                                 "updated_by": user_pk} for values in created])  # fmt: skip
    except IntegrityError as exc:
        taken = _names_taken([values["alias"] for values in created])
        clash = next((taken[values["alias"].lower()] for values in created if values["alias"].lower() in taken), None)
        if clash is not None:
            # Worded as alias_create's refusal (Alias.validate_constraints), with the existing alias's own name.
            existing = Alias.objects.get(pk=clash).alias
            raise ValidationError(
                {"alias": f"An alias named {existing} already exists (names ignore case)."}, code="unique"
            ) from exc
        raise
    keys = _names_taken([values["alias"] for values in created])
    for row, values in zip(creates, created, strict=True):
        records[row.number] = (AliasChange.Action.CREATE, keys[values["alias"].lower()], values["alias"], 1, values,
                               _diff({}, values), None)  # fmt: skip

    # In the file's order, as row-by-row saves would number them.
    ordered = [records[number] for number in sorted(records)]
    bulk_insert(
        AliasChange,
        [
            {"alias": pk, "alias_name": name, "action": action, "version": version, "changes": changes,
             "snapshot": after, "changed_by": user_pk}
            for action, pk, name, version, after, changes, _before in ordered
        ],
    )  # fmt: skip
    audit_record_many(
        AuditRecord(kind="alias", action=action, actor=by, object_id=pk, object_repr=name, before=before, after=after)
        for action, pk, name, _version, after, _changes, before in ordered
    )
