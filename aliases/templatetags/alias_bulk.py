"""The alias list's bulk action bar: `{% alias_bulk_bar %}` inside the table fragment, so a search, sort or page
change made with htmx brings a bar that matches the rows shown (their count, the filters, the time shown)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from aliases.bulk import BULK_FIELDS, export_formats
from aliases.bulk_views import LIST_FILTERS
from aliases.presets.selectors import preset_list

register = template.Library()


@register.inclusion_tag("aliases/partials/_bulk_actions.html", takes_context=True)
def alias_bulk_bar(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    user = request.user
    table = context["table"]
    if not user.has_perm("aliases.change_alias"):
        return {"shown": False}
    return {
        "shown": True,
        "csrf_token": context.get("csrf_token"),
        # Taken before the rows are read (the bar comes first): select-across skips what was saved after it.
        "rendered_at": timezone.now().isoformat(),
        "filters": [(name, value) for name in LIST_FILTERS if (value := request.GET.get(name))],
        "next_url": request.get_full_path(),
        "total": table.paginator.count,
        "on_page": len(table.page.object_list),
        "fields": BULK_FIELDS,
        "presets": list(preset_list().values_list("name", flat=True)),
        "formats": export_formats(),
        "can_delete": user.has_perm("aliases.delete_alias"),
    }
