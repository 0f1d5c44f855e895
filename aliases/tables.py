from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma, naturaltime
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe

from aliases.file_status import AliasFile, FileStatus, alias_files
from aliases.models import Alias
from config.tables import FAST_BODY_TABLE_TEMPLATE, FastBodyMixin

# Marks where the name goes in a URL reversed once per view and script prefix (reverse() per row was a tenth of
# the list's rendering); stored names never hold a NUL.
_NAME_SLOT = "\x00"


@lru_cache(maxsize=64)
def _url_around_name(view_name: str, script_prefix: str) -> tuple[str, str] | None:
    before, slot, after = reverse(view_name, args=[_NAME_SLOT]).partition(quote(_NAME_SLOT))
    return (before, after) if slot else None


def alias_url(view_name: str, name: str) -> str | None:
    """The page of an alias, or None when its stored name cannot be part of a URL (a row stored before the name
    rules were checked whole, e.g. one ending in a newline): such a row is listed without a link, never a 500.

    The same URL reverse() gives: the `path` converter takes any name without a newline, quoted as reverse()
    quotes it."""
    around = _url_around_name(view_name, get_script_prefix())
    if around is not None and name and "\n" not in name and _NAME_SLOT not in name:
        return around[0] + quote(name, safe=RFC3986_SUBDELIMS + "/~:@") + around[1]
    try:
        return reverse(view_name, args=[name])
    except NoReverseMatch:
        return None


FILE_STATUS_BADGES = {
    FileStatus.LOCAL: "text-bg-success",
    FileStatus.MISSING: "text-bg-secondary",
    FileStatus.INCOMPLETE: "text-bg-warning",
    FileStatus.DOWNLOADING: "text-bg-primary",
    FileStatus.CORRUPT: "text-bg-danger",
    FileStatus.UNREADABLE: "text-bg-danger",
}


def file_status_badge(found: AliasFile) -> SafeString:
    label = found.status
    if found.status == FileStatus.DOWNLOADING and found.percent is not None:
        label = f"downloading {found.percent:.0f} %"
    return format_html(
        '<span class="badge {}" data-file-status="{}" title="{}">{}</span>',
        FILE_STATUS_BADGES[found.status],
        found.status,
        found.description,
        label,
    )


class AliasTable(FastBodyMixin, tables.Table):
    """Every column sorts; the primary key breaks ties so a page never repeats or skips a row."""

    # Bulk actions (aliases/bulk_views.py): each box carries the row's version, so a row someone saved since the
    # page was shown is skipped, not overwritten. The boxes belong to the action bar's form (`form=`), outside the
    # table, so rows may hold forms of their own. Shown to those who may change aliases (before_render).
    select = tables.Column(
        verbose_name=mark_safe(
            '<input type="checkbox" class="form-check-input" aria-label="Select all on this page" data-bulk-page>'
        ),
        empty_values=(),
        orderable=False,
        attrs={"th": {"class": "bulk-select"}, "td": {"class": "bulk-select"}},
    )
    alias = tables.Column(verbose_name="Alias")
    source = tables.Column(order_by=("source", "pk"))
    repo = tables.Column(order_by=("repo", "pk"), attrs={"td": {"class": "text-break"}})
    filename = tables.Column(order_by=("filename", "pk"), attrs={"td": {"class": "text-break"}})
    snapshot = tables.Column(order_by=("snapshot", "pk"))
    chat_template = tables.Column(verbose_name="Chat template", order_by=("chat_template", "pk"))
    n_ctx = tables.Column(verbose_name="n_ctx", order_by=("n_ctx", "pk"), attrs={"td": {"class": "text-end"}})
    temperature = tables.Column(
        verbose_name="Temperature", order_by=("temperature", "pk"), attrs={"td": {"class": "text-end"}}
    )
    updated_at = tables.Column(verbose_name="Updated", order_by=("updated_at", "pk"))
    file_status = tables.Column(verbose_name="File", empty_values=(), orderable=False)

    class Meta:
        model = Alias
        fields = (
            "alias",
            "source",
            "repo",
            "filename",
            "snapshot",
            "chat_template",
            "n_ctx",
            "temperature",
            "updated_at",
        )
        sequence = ("select", "alias", "file_status", "...")
        template_name = FAST_BODY_TABLE_TEMPLATE  # up to 100 rows a page: the body rendered in Python
        attrs = {"class": "table table-sm table-hover align-middle", "id": "alias-rows"}
        row_attrs = {"data-alias": lambda record: record.alias}
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    def __init__(self, *args: Any, next_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.next_url = next_url

    def before_render(self, request) -> None:
        if not request.user.has_perm("aliases.change_alias"):
            self.columns.hide("select")

    @cached_property
    def alias_files(self) -> dict[int, AliasFile]:
        # Two queries for the page being shown, never one per row.
        return alias_files(row.record for row in self.paginated_rows)

    def render_select(self, record: Alias) -> SafeString:
        # A plain column rendered here (not CheckBoxColumn), so the fast body renders it too.
        return format_html(
            '<input type="checkbox" class="form-check-input" name="selected" form="alias-bulk" value="{}:{}"'
            ' aria-label="Select {}" data-bulk-row>',
            record.version,
            record.alias,
            record.alias,
        )

    def render_file_status(self, record: Alias) -> SafeString:
        return file_status_badge(self.alias_files[record.pk])

    def order_alias(self, queryset: QuerySet[Alias], is_descending: bool) -> tuple[QuerySet[Alias], bool]:
        # Names are unique regardless of case, so sort them the same way.
        name = Lower("alias").desc() if is_descending else Lower("alias").asc()
        return queryset.order_by(name, "-pk" if is_descending else "pk"), True

    def render_alias(self, record: Alias, value: str) -> str:
        user = self.request.user
        can_edit = user.has_perm("aliases.change_alias") and not record.is_read_only
        url = alias_url("aliases:edit" if can_edit else "aliases:detail", record.alias)
        if url is None:
            return format_html(
                '<span class="fw-semibold" title="This name breaks the naming rules; an admin can fix it">{}</span>',
                value,
            )
        if self.next_url:
            url = f"{url}?{urlencode({'next': self.next_url})}"
        return format_html('<a class="fw-semibold" href="{}">{}</a>', url, value)

    def render_source(self, record: Alias, value: str) -> str:
        if record.is_read_only:
            return format_html(
                '<span class="badge text-bg-secondary" title="Generated from a local file; read-only">{}</span>',
                record.source,
            )
        return record.source

    def render_snapshot(self, record: Alias, value: str) -> str:
        return format_html('<code title="{}">{}</code>', value, record.short_snapshot)

    def render_n_ctx(self, value: int) -> str:
        return "model default" if value == 0 else intcomma(value)

    def render_updated_at(self, value) -> str:
        exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
        return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, naturaltime(value))
