from __future__ import annotations

from django.apps import AppConfig


class PresetsConfig(AppConfig):
    """Parameter presets live beside the aliases they fill (their fields and bounds are the Alias model's), as an
    app of their own so their table, permissions and migrations are theirs."""

    name = "aliases.presets"
    label = "presets"
    verbose_name = "Parameter presets"
