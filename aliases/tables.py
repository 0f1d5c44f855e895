from __future__ import annotations

from functools import cached_property, lru_cache
from urllib.parse import quote, urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe

from aliases.file_status import AliasFile, FileStatus, alias_files
from aliases.models import Alias
from config.crud import NamedObjectTable
from config.humanize import NaturalTimes
from config.serving.runtime import RouterStatus, router_state_badge, router_status
from config.tables import FAST_BODY_TABLE_TEMPLATE, FastBodyMixin, cell_html, escaped
from config.wrapping import wrap_name

# Marks where the name goes in a URL reversed once per view and script prefix (reverse() per row was a tenth of
# the list's rendering); stored names never hold a NUL.
_NAME_SLOT = "\x00"


@lru_cache(maxsize=64)
def _url_around_name(view_name: str, script_prefix: str) -> tuple[str, str] | None:
    before, slot, after = reverse(view_name, args=[_NAME_SLOT]).partition(quote(_NAME_SLOT))
    return (before, after) if slot else None


@lru_cache(maxsize=1024)
def _quoted_name(name: str) -> str:
    # A row's four links (its name and three actions) quote the same name.
    return quote(name, safe=RFC3986_SUBDELIMS + "/~:@")


def alias_url(view_name: str, name: str, *, script_prefix: str | None = None) -> str | None:
    """The page of an alias, or None when its stored name cannot be part of a URL (a row stored before the name
    rules were checked whole, e.g. one ending in a newline): such a row is listed without a link, never a 500.

    The same URL reverse() gives: the `path` converter takes any name without a newline, quoted as reverse()
    quotes it. A table passes `script_prefix` (read once per table, not once per link)."""
    around = _url_around_name(view_name, get_script_prefix() if script_prefix is None else script_prefix)
    if around is not None and name and "\n" not in name and _NAME_SLOT not in name:
        return around[0] + _quoted_name(name) + around[1]
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
    if found.status == FileStatus.DOWNLOADING and found.download.status == "paused":
        label = "download paused"  # on its way, but not moving: the downloads page resumes it
    if found.status == FileStatus.DOWNLOADING and found.percent is not None:
        label = f"{label} {found.percent:.0f} %"
    return cell_html(
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
        return cell_html(
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
        can_edit = self.row_permissions[0] and not record.is_read_only
        url = alias_url(
            "aliases:edit" if can_edit else "aliases:detail", record.alias, script_prefix=self.script_prefix
        )
        if url is None:
            return cell_html(
                '<span class="fw-semibold" title="This name breaks the naming rules; an admin can fix it">{}</span>',
                value,
            )
        return cell_html('<a class="fw-semibold" href="{}{}">{}</a>', url, self.back_query, wrap_name(value))

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

    @cached_property
    def back_query(self) -> SafeString:
        """`?next=<this list page>` for every link of a row, escaped once per table rather than once a link."""
        return format_html("?{}", urlencode({"next": self.next_url})) if self.next_url else SafeString("")

    @cached_property
    def script_prefix(self) -> str:
        return get_script_prefix()

    # (view, label, button style, the permission of row_permissions it needs, refused on read-only rows)
    ROW_ACTIONS = (
        ("aliases:edit", "Edit", "btn-outline-primary", 0, True),
        ("aliases:duplicate", "Duplicate", "btn-outline-secondary", 1, False),
        ("aliases:delete", "Delete", "btn-outline-danger", 2, True),
    )

    @cached_property
    def action_pieces(self) -> list[tuple[str, bool, SafeString, SafeString, SafeString, SafeString]]:
        """Each button the user may be offered, as the markup before its URL, between the URL and the name,
        between the two uses of the name and after it: escaped once per table, not once per row."""
        return [
            (
                view_name,
                refused_read_only,
                format_html('<a class="btn {}" href="', style),
                format_html('{}" data-row-action="{}" aria-label="{} ', self.back_query, label.lower(), label),
                format_html('" title="{} ', label),
                format_html('">{}</a>', label),
            )
            for view_name, label, style, needs, refused_read_only in self.ROW_ACTIONS
            if self.row_permissions[needs]
        ]

    def render_actions(self, record: Alias) -> SafeString | str:
        """Edit, duplicate and delete, each as the user may; each page leads back to this list page."""
        # Joined from pieces each escaped (the name and URL here, the rest in action_pieces), as format_html would
        # make them: format_html's escaping of nine arguments a button was most of this column's time.
        name = SafeString(escaped(record.alias))
        parts: list[str] = []
        for view_name, refused_read_only, start, after_url, between_names, end in self.action_pieces:
            if refused_read_only and record.is_read_only:
                continue
            url = alias_url(view_name, record.alias, script_prefix=self.script_prefix)
            if url is not None:
                parts += (start, escaped(url), after_url, name, between_names, name, end)
        if not parts:
            return ""
        return cell_html(
            '<div class="btn-group btn-group-sm" role="group" aria-label="Actions for {}">{}</div>',
            name,
            SafeString("".join(parts)),
        )

    def render_source(self, record: Alias, value: str) -> str:
        if record.is_read_only:
            return cell_html(
                '<span class="badge text-bg-secondary" title="Generated from a local file; read-only">{}</span>',
                record.source,
            )
        return record.source

    def render_snapshot(self, record: Alias, value: str) -> str:
        return cell_html('<code title="{}">{}</code>', value, record.short_snapshot)

    def render_n_ctx(self, value: int) -> str:
        if value == 0:
            return "model default"
        # A handful of sizes recur down the page: each grouped (and localized) once.
        shown = self.n_ctx_shown.get(value)
        if shown is None:
            shown = self.n_ctx_shown[value] = intcomma(value)
        return shown

    @cached_property
    def n_ctx_shown(self) -> dict[int, str]:
        return {}

    @cached_property
    def natural_time(self) -> NaturalTimes:
        return NaturalTimes()

    @cached_property
    def time_zone(self):
        return timezone.get_current_timezone()

    def render_updated_at(self, value) -> str:
        exact = timezone.localtime(value, self.time_zone).strftime("%Y-%m-%d %H:%M:%S %Z")
        return cell_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, self.natural_time(value))
