from __future__ import annotations

from functools import cached_property, lru_cache
from urllib.parse import quote, urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma, naturaltime
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe

from aliases.file_status import AliasFile, FileStatus, alias_files
from aliases.models import Alias
from config.crud import NamedObjectTable
from config.serving.runtime import RouterStatus, router_state_badge, router_status
from config.tables import FAST_BODY_TABLE_TEMPLATE, FastBodyMixin
from config.wrapping import wrap_name

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


class AliasTable(FastBodyMixin, NamedObjectTable):
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
    alias = tables.Column(verbose_name="Alias", attrs={"td": {"class": "name-cell"}})
    source = tables.Column(order_by=("source", "pk"))
    # Names wrap at their separators (config/wrapping.py), never mid-word.
    repo = tables.Column(order_by=("repo", "pk"), attrs={"td": {"class": "name-cell"}})
    filename = tables.Column(order_by=("filename", "pk"), attrs={"td": {"class": "name-cell"}})
    snapshot = tables.Column(order_by=("snapshot", "pk"))
    chat_template = tables.Column(verbose_name="Chat template", order_by=("chat_template", "pk"))
    n_ctx = tables.Column(verbose_name="n_ctx", order_by=("n_ctx", "pk"), attrs={"td": {"class": "text-end"}})
    temperature = tables.Column(
        verbose_name="Temperature", order_by=("temperature", "pk"), attrs={"td": {"class": "text-end"}}
    )
    updated_at = tables.Column(verbose_name="Updated", order_by=("updated_at", "pk"))
    file_status = tables.Column(verbose_name="File", empty_values=(), orderable=False)
    # The alias's state on the llama-server router; hidden unless one is configured (before_render).
    server = tables.Column(
        verbose_name="Server", empty_values=(), orderable=False, attrs={"th": {"data-column": "server"}}
    )
    actions = tables.Column(
        verbose_name="Actions",
        empty_values=(),
        orderable=False,
        attrs={"td": {"class": "text-end text-nowrap row-actions"}, "th": {"class": "row-actions text-end"}},
    )

    name_field = "alias"

    class Meta(NamedObjectTable.Meta):
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
        sequence = ("select", "alias", "file_status", "server", "...", "actions")
        template_name = FAST_BODY_TABLE_TEMPLATE  # up to 100 rows a page: the body rendered in Python
        attrs = {"class": "table table-sm table-hover align-middle", "id": "alias-rows"}
        row_attrs = {"data-alias": lambda record: record.alias}

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

    @cached_property
    def router_status(self) -> RouterStatus | None:
        # One GET /models for the page (kept a few seconds), never one per row.
        return router_status()

    def render_server(self, record: Alias) -> SafeString | str:
        return router_state_badge(self.router_status, record.alias)

    # Names are unique regardless of case, so sort them the same way.
    order_alias = NamedObjectTable.order_by_name

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
        return format_html('<a class="fw-semibold" href="{}">{}</a>', url, wrap_name(value))

    def render_repo(self, value: str) -> SafeString:
        return wrap_name(value)

    def render_filename(self, value: str) -> SafeString:
        return wrap_name(value)

    def before_render(self, request) -> None:
        # Viewers and operators change nothing: no empty column of actions or boxes for them.
        if self.router_status is None:
            self.columns.hide("server")
        may_change = self.row_permissions[0]
        if not may_change:
            self.columns.hide("select")
        if not any(self.row_permissions):
            self.columns.hide("actions")

    @cached_property
    def row_permissions(self) -> tuple[bool, bool, bool]:
        # Once per table, not once per row.
        user = self.request.user
        return (
            user.has_perm("aliases.change_alias"),
            user.has_perm("aliases.add_alias"),
            user.has_perm("aliases.delete_alias"),
        )

    def render_actions(self, record: Alias) -> SafeString | str:
        """Edit, duplicate and delete, each as the user may; each page leads back to this list page."""
        may_change, may_add, may_delete = self.row_permissions
        back = f"?{urlencode({'next': self.next_url})}" if self.next_url else ""
        buttons = []
        for view_name, label, style, allowed in (
            ("aliases:edit", "Edit", "btn-outline-primary", may_change and not record.is_read_only),
            ("aliases:duplicate", "Duplicate", "btn-outline-secondary", may_add),
            ("aliases:delete", "Delete", "btn-outline-danger", may_delete and not record.is_read_only),
        ):
            url = alias_url(view_name, record.alias) if allowed else None
            if url is not None:
                buttons.append(
                    format_html(
                        '<a class="btn {}" href="{}{}" data-row-action="{}" aria-label="{} {}" title="{} {}">{}</a>',
                        style,
                        url,
                        back,
                        label.lower(),
                        label,
                        record.alias,
                        label,
                        record.alias,
                        label,
                    )
                )
        if not buttons:
            return ""
        return format_html(
            '<div class="btn-group btn-group-sm" role="group" aria-label="Actions for {}">{}</div>',
            record.alias,
            SafeString("".join(buttons)),
        )

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
