from __future__ import annotations

from urllib.parse import urlencode

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from aliases.forms import display_value
from aliases.presets.models import Preset
from config.crud import NamedObjectTable


class PresetTable(NamedObjectTable):
    name = tables.Column(verbose_name="Preset")
    description = tables.Column(orderable=False, attrs={"td": {"class": "text-break"}})
    params = tables.Column(verbose_name="Sets", empty_values=(), orderable=False)
    updated_at = tables.Column(verbose_name="Updated", order_by=("updated_at", "pk"))

    class Meta(NamedObjectTable.Meta):
        model = Preset
        fields = ("name", "description", "updated_at")
        sequence = ("name", "description", "params", "updated_at")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "preset-rows"}
        row_attrs = {"data-preset": lambda record: record.name}

    order_name = NamedObjectTable.order_by_name

    def render_name(self, record: Preset, value: str) -> SafeString:
        url = reverse("presets:detail", args=[record.name])
        if self.next_url:
            url = f"{url}?{urlencode({'next': self.next_url})}"
        badge = format_html(' <span class="badge text-bg-info">{}</span>', "built-in") if record.builtin else ""
        return format_html('<a class="fw-semibold" href="{}">{}</a>{}', url, value, badge)

    def render_params(self, record: Preset) -> SafeString:
        return format_html_join(
            " ", '<code class="text-nowrap">{}={}</code>', ((n, display_value(v)) for n, v in record.params().items())
        )
