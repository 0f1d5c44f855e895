from __future__ import annotations

from django import template

from aliases.models import Alias
from config.serving.exports import alias_exports
from config.serving.services import preset_path

register = template.Library()


@register.inclusion_tag("serving/partials/_run_elsewhere.html")
def run_elsewhere(alias: Alias) -> dict:
    """The alias page's "Run elsewhere" section: each export, or why it cannot be made."""
    path = preset_path()
    exports = alias_exports(alias, template_dir=path.parent if path else None)
    return {"alias": alias, "exports": exports}
