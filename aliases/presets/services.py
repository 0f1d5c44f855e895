"""Every write to a preset, and applying one to an alias: pages, the API and (later) bulk actions call these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from aliases.models import Alias
from aliases.presets.models import PRESET_PARAMS, Preset
from aliases.services import alias_update
from config.audit.services import audit_record

PRESET_FIELDS = ("name", "description", *PRESET_PARAMS)


class PresetReadOnlyError(Exception):
    """Built-in presets are not edited or deleted; duplicate them instead."""

    def __init__(self, preset: Preset):
        self.preset = preset
        super().__init__(
            f"'{preset.name}' is a built-in preset and is read-only; duplicate it to make one you can edit."
        )


class PresetVersionConflict(Exception):
    """The preset changed since the editor read it."""

    def __init__(self, *, current: Preset, expected_version: int):
        self.current = current
        self.expected_version = expected_version
        super().__init__(
            f"'{current.name}' was changed since you opened it (you edited version {expected_version}, it is now "
            f"version {current.version}). Nothing was saved."
        )


def _user_or_none(by: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return by if by is not None and by.is_authenticated else None


def _apply(preset: Preset, data: Mapping[str, Any]) -> None:
    unknown = set(data) - set(PRESET_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    for name, value in data.items():
        setattr(preset, name, value)
    # "Not in the preset" has one spelling, null: an empty stop list or user is the same as leaving it out.
    if preset.stop in ([], ()):
        preset.stop = None
    if preset.user == "":
        preset.user = None
    if preset.description is None:
        preset.description = ""


def _save_checked(preset: Preset) -> None:
    preset.full_clean()
    try:
        with transaction.atomic():  # a savepoint: a lost unique race leaves the outer transaction usable
            preset.save()
    except IntegrityError as exc:
        if Preset.objects.by_name(preset.name).exclude(pk=preset.pk).exists():
            raise ValidationError({"name": "A preset with this name already exists (names ignore case)."}) from exc
        raise


def _audit(*, preset: Preset, action: str, by, before, after) -> None:
    audit_record(
        actor=by, kind="preset", action=action, object_id=preset.pk, object_repr=preset.name, before=before, after=after
    )


@transaction.atomic
def preset_create(*, data: Mapping[str, Any], by: AbstractBaseUser | None) -> Preset:
    preset = Preset()
    _apply(preset, data)
    preset.created_by = preset.updated_by = _user_or_none(by)
    _save_checked(preset)
    _audit(preset=preset, action="create", by=by, before=None, after=preset.values())
    return preset


@transaction.atomic
def preset_update(
    *, preset: Preset, data: Mapping[str, Any], expected_version: int, by: AbstractBaseUser | None
) -> Preset:
    """Replace the preset's values if it is still at `expected_version`; else PresetVersionConflict."""
    current = Preset.objects.select_for_update().get(pk=preset.pk)
    if current.builtin:
        raise PresetReadOnlyError(current)
    if current.version != expected_version:
        raise PresetVersionConflict(current=current, expected_version=expected_version)
    before = current.values()
    _apply(current, data)
    if current.values() == before:
        return current
    current.version += 1
    current.updated_by = _user_or_none(by)
    _save_checked(current)
    _audit(preset=current, action="update", by=by, before=before, after=current.values())
    return current


@transaction.atomic
def preset_delete(*, preset: Preset, by: AbstractBaseUser | None, expected_version: int | None = None) -> None:
    current = Preset.objects.select_for_update().filter(pk=preset.pk).first()
    if current is None:
        return  # already gone: deleting twice has one effect
    if current.builtin:
        raise PresetReadOnlyError(current)
    if expected_version is not None and current.version != expected_version:
        raise PresetVersionConflict(current=current, expected_version=expected_version)
    _audit(preset=current, action="delete", by=by, before=current.values(), after=None)
    current.delete()


def preset_values(preset: Preset) -> dict[str, Any]:
    """The alias fields the preset sets, as an alias stores them: what "apply" writes over an alias's values."""
    return preset.params()


def preset_copy_values(*, source: Preset) -> dict[str, Any]:
    """Initial values for a copy of a preset (the way to change a built-in one): everything but the name."""
    return {**source.values(), "name": "", "description": source.description}


def preset_apply(
    *, alias: Alias, preset: Preset, by: AbstractBaseUser | None, expected_version: int | None = None
) -> Alias:
    """Set the preset's parameters on `alias` (the others stay as they are), through alias_update and so through
    every alias rule, its history and the audit log. Raises what alias_update raises (read-only alias, a
    ValidationError when a value clashes with the alias's own, e.g. max_tokens above its n_ctx, and
    AliasVersionConflict when the alias is no longer at `expected_version`, by default the version `alias` holds)."""
    version = alias.version if expected_version is None else expected_version
    return alias_update(alias=alias, data=preset_values(preset), expected_version=version, by=by)
