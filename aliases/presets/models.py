"""A preset: a named subset of an alias's request and context parameters (DESIGN.md, "Preset").

Each parameter field is built from the Alias model's own field, validators included, so a preset is held to the
same bounds without restating one; unlike an alias, every parameter may be left out (null = not in the preset).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Lower

from aliases.models import CONTEXT_PARAMS, REQUEST_PARAMS, Alias
from aliases.validators import ALIAS_NAME_MAX, validate_alias_name

PRESET_PARAMS = (*REQUEST_PARAMS, *CONTEXT_PARAMS)
DESCRIPTION_MAX = 500


def _param(name: str) -> models.Field:
    """The alias's field `name`, made optional: same type, validators and help text."""
    alias_field = Alias._meta.get_field(name)
    _, _, args, kwargs = alias_field.deconstruct()
    kwargs.update(null=True, blank=True, default=None)
    return alias_field.__class__(*args, **kwargs)


class PresetQuerySet(models.QuerySet):
    def by_name(self, name: str) -> PresetQuerySet:
        return self.alias(name_lower=Lower("name")).filter(name_lower=Lower(Value(name)))


class Preset(models.Model):
    name = models.CharField(
        max_length=ALIAS_NAME_MAX,
        validators=[validate_alias_name],
        help_text="A short name, e.g. precise or long-context. Unique regardless of case.",
    )
    description = models.CharField(max_length=DESCRIPTION_MAX, blank=True, help_text="What the preset is for.")
    builtin = models.BooleanField(default=False, editable=False, help_text="Shipped with ModelDesk; read-only.")

    temperature = _param("temperature")
    top_p = _param("top_p")
    max_tokens = _param("max_tokens")
    frequency_penalty = _param("frequency_penalty")
    presence_penalty = _param("presence_penalty")
    seed = _param("seed")
    stop = _param("stop")
    user = _param("user")
    n_seed = _param("n_seed")
    n_threads = _param("n_threads")
    n_ctx = _param("n_ctx")
    n_parallel = _param("n_parallel")
    n_predict = _param("n_predict")
    n_keep = _param("n_keep")

    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    objects = PresetQuerySet.as_manager()

    class Meta:
        ordering = [Lower("name"), "pk"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="preset_name_unique_ci",
                violation_error_message="A preset with this name already exists (names ignore case).",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="preset_version_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def params(self) -> dict[str, Any]:
        """The parameters this preset sets (left-out ones are not in it)."""
        return {name: getattr(self, name) for name in PRESET_PARAMS if getattr(self, name) is not None}

    def values(self) -> dict[str, Any]:
        """Everything a person sets, as plain data (for the audit log and conflict checks)."""
        return {"name": self.name, "description": self.description, **{n: getattr(self, n) for n in PRESET_PARAMS}}

    def clean(self) -> None:
        super().clean()
        # The alias's cross-field rules (n_keep, max_tokens, n_predict within n_ctx), run by the Alias model itself
        # on an unsaved alias holding these values; only parameter errors concern a preset.
        probe = Alias(alias="preset-check", **self.params())
        try:
            probe.clean()
        except ValidationError as exc:
            errors = {name: messages for name, messages in exc.message_dict.items() if name in PRESET_PARAMS}
            if errors:
                raise ValidationError(errors) from exc

    def validate_constraints(self, exclude=None) -> None:
        if not exclude or "name" not in exclude:
            clash = Preset.objects.by_name(self.name).exclude(pk=self.pk).first()
            if clash is not None:
                raise ValidationError(
                    {"name": ValidationError(f"A preset named {clash.name} already exists (names ignore case).")}
                )
        super().validate_constraints(exclude=exclude)
