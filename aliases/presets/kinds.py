"""Presets as their pages and API name them (config/crud.py)."""

from __future__ import annotations

from aliases.presets.selectors import preset_get
from aliases.presets.services import PresetReadOnlyError
from config.crud import NamedKind

PRESETS = NamedKind(
    noun="preset",
    lookup=lambda name: preset_get(name=name),
    read_only_error=PresetReadOnlyError,
    is_read_only=lambda preset: preset.builtin,
    list_url_name="presets:list",
    read_only_template="aliases/presets/preset_read_only.html",
)
