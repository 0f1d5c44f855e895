from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.audit.diff import changed_fields
from config.audit.models import AuditEntry
from config.tables import TABLE_TEMPLATE

UNSET = "—"

# A row names this many changed fields; the entry's page shows them all.
FIELDS_SHOWN = 4


def relative_time(value: datetime) -> SafeString:
    """ "3 minutes ago", with the exact time on hover and in the markup."""
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, naturaltime(value))


def actor_label(entry: AuditEntry) -> SafeString:
    if entry.actor_name:
        return format_html("{}", entry.actor_name)
    return format_html('<span class="text-body-secondary">{}</span>', "system")


class AuditTable(tables.Table):
    """The audit log, newest first by default; every column but the change summary sorts (pk breaks ties)."""

    at = tables.Column(verbose_name="When", order_by=("at", "pk"), attrs={"td": {"class": "text-nowrap"}})
    actor_name = tables.Column(verbose_name="Actor", order_by=("actor_name", "pk"), empty_values=())
    kind = tables.Column(order_by=("kind", "pk"))
    action = tables.Column(order_by=("action", "pk"))
    object_repr = tables.Column(
        verbose_name="Object", order_by=("object_repr", "pk"), attrs={"td": {"class": "text-break"}}
    )
    changes = tables.Column(verbose_name="Changed", empty_values=(), orderable=False)
    details = tables.Column(
        verbose_name="",
        empty_values=(),
        orderable=False,
        attrs={"td": {"class": "text-end row-actions"}, "th": {"class": "row-actions"}},
    )

    class Meta:
        model = AuditEntry
        fields = ("at", "actor_name", "kind", "action", "object_repr")
        sequence = ("at", "actor_name", "kind", "action", "object_repr", "changes", "details")
        template_name = TABLE_TEMPLATE
        attrs = {"class": "table table-sm table-hover align-middle", "id": "audit-rows"}
        row_attrs = {"data-audit": lambda record: str(record.pk)}
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    def __init__(self, *args: Any, next_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.next_url = next_url

    def render_at(self, value: datetime) -> SafeString:
        return relative_time(value)

    def render_actor_name(self, record: AuditEntry) -> SafeString:
        return actor_label(record)

    def render_object_repr(self, record: AuditEntry, value: str) -> SafeString | str:
        return value or record.object_id or UNSET

    def render_changes(self, record: AuditEntry) -> SafeString | str:
        names = changed_fields(record.before, record.after)
        if not names:
            return UNSET
        shown = format_html_join(", ", "<code>{}</code>", ((name,) for name in names[:FIELDS_SHOWN]))
        more = len(names) - FIELDS_SHOWN
        if more > 0:
            return format_html('{} <span class="text-body-secondary">and {} more</span>', shown, more)
        return shown

    def render_details(self, record: AuditEntry) -> SafeString:
        url = reverse("audit:detail", args=[record.pk])
        if self.next_url:
            url = f"{url}?{urlencode({'next': self.next_url})}"
        return format_html('<a class="btn btn-sm btn-outline-secondary text-nowrap" href="{}">Details</a>', url)
