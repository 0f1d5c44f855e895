from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db.models import F, QuerySet
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from aliases.tables import alias_url
from config.formatting import UNSET, human_count, human_duration, human_size
from config.tables import FAST_BODY_TABLE_TEMPLATE, TABLE_TEMPLATE, FastBodyMixin
from config.wrapping import wrap_name
from modelfiles.models import Download, ModelFile, Verification
from modelfiles.selectors import modelfile_alias_names, modelfile_state_reason

# --- how sizes, speeds and durations read -----------------------------------------------------------------------


def exact_time(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def relative_time(value: datetime | None) -> SafeString | str:
    """ "3 minutes ago", with the exact time on hover and in the markup."""
    if value is None:
        return UNSET
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact_time(value), naturaltime(value)
    )


def short_commit(value: str) -> SafeString | str:
    if not value:
        return UNSET
    return format_html('<code title="{}">{}</code>', value, value[:8] if len(value) == 40 else value)


# --- model files ---------------------------------------------------------------------------------------------------

STATE_BADGES = {
    ModelFile.State.OK: "text-bg-success",
    ModelFile.State.INCOMPLETE: "text-bg-warning",
    ModelFile.State.CORRUPT: "text-bg-danger",
    ModelFile.State.UNREADABLE: "text-bg-danger",
}


def state_badge(state: str, reason: str = "") -> SafeString:
    return format_html(
        '<span class="badge {}" data-state="{}" title="{}">{}</span>',
        STATE_BADGES.get(state, "text-bg-light"),
        state,
        reason,
        state,
    )


class ModelFileTable(FastBodyMixin, tables.Table):
    """The files in the cache. Every column but the aliases sorts; the primary key breaks ties."""

    repo = tables.Column(order_by=("repo", "pk"), attrs={"td": {"class": "text-break"}})
    filename = tables.Column(order_by=("filename", "pk"), attrs={"td": {"class": "text-break"}})
    snapshot = tables.Column(order_by=("snapshot", "pk"))
    size = tables.Column(
        order_by=("size", "pk"), attrs={"td": {"class": "text-end text-nowrap"}, "th": {"class": "text-end"}}
    )
    modified_at = tables.Column(
        verbose_name="Modified", order_by=("modified_at", "pk"), attrs={"td": {"class": "text-nowrap"}}
    )
    aliases = tables.Column(verbose_name="Aliases", empty_values=(), orderable=False)
    checks = tables.Column(verbose_name="Checks", empty_values=(), orderable=False)
    actions = tables.Column(
        verbose_name="",
        empty_values=(),
        orderable=False,
        attrs={"td": {"class": "text-end row-actions"}, "th": {"class": "row-actions"}},
    )
    # From the GGUF header (modelfiles/gguf_header.py); unset values sort last.
    gguf_quantization = tables.Column(verbose_name="Quant", order_by=("gguf_quantization", "pk"), empty_values=())
    gguf_parameters = tables.Column(
        verbose_name="Params",
        empty_values=(),
        attrs={"td": {"class": "text-end text-nowrap"}, "th": {"class": "text-end"}},
    )
    gguf_context_length = tables.Column(
        verbose_name="Context",
        empty_values=(),
        attrs={"td": {"class": "text-end text-nowrap"}, "th": {"class": "text-end"}},
    )
    state = tables.Column(verbose_name="State", order_by=("state", "pk"))
    # Files per host: the cache that holds the file (rows come with their location: modelfile_list).
    location = tables.Column(verbose_name="Host", order_by=("location__name", "pk"), empty_values=())

    class Meta:
        model = ModelFile
        fields = ("repo", "filename", "snapshot", "size", "modified_at")
        sequence = ("repo", "filename", "snapshot", "location", "size", "gguf_quantization", "gguf_parameters",
                    "gguf_context_length", "state", "modified_at", "aliases", "checks", "actions")  # fmt: skip
        template_name = FAST_BODY_TABLE_TEMPLATE  # up to 100 rows a page: the body rendered in Python
        attrs = {"class": "table table-sm table-hover align-middle", "id": "modelfile-rows"}
        row_attrs = {"data-modelfile": lambda record: f"{record.repo}/{record.filename}@{record.snapshot}"}
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    @cached_property
    def alias_names(self) -> dict[int, list[str]]:
        # One query for the rows of the page being shown (the same rows the table then renders, from the
        # queryset's cache), never one per row.
        return modelfile_alias_names(row.record for row in self.paginated_rows)

    @cached_property
    def latest_verifications(self) -> dict[int, Verification]:
        # One query for the page's rows: the newest verification of each.
        latest: dict[int, Verification] = {}
        pks = [row.record.pk for row in self.paginated_rows]
        for verification in Verification.objects.filter(modelfile_id__in=pks).order_by("-created_at", "-pk"):
            latest.setdefault(verification.modelfile_id, verification)
        return latest

    def before_render(self, request) -> None:
        self.checks_context = {
            "can_verify": request.user.has_perm("modelfiles.verify_modelfile"),
            "can_pull": request.user.has_perm("modelfiles.request_download"),
            "csrf_token": get_token(request),
            "next_url": request.get_full_path(),
        }
        self.can_create_alias = request.user.has_perm("aliases.add_alias")
        self.can_delete = request.user.has_perm("modelfiles.delete_modelfile")
        if not (self.can_create_alias or self.can_delete):
            self.columns.hide("actions")

    def render_location(self, record: ModelFile) -> str:
        return record.location.label if record.location_id else "—"

    def render_snapshot(self, record: ModelFile, value: str) -> SafeString:
        refs = format_html_join(
            "", ' <span class="badge text-bg-light border" title="Ref">{}</span>', ((ref,) for ref in record.refs or ())
        )
        return format_html("{}{}", short_commit(value), refs)

    def render_filename(self, record: ModelFile, value: str) -> SafeString:
        link = format_html('<a href="{}">{}</a>', reverse("modelfiles:detail", args=[record.pk]), value)
        if not record.split_count:
            return link
        return format_html(
            '{} <span class="badge text-bg-light border" title="One part of a split model">part {} of {}</span>',
            link,
            record.split_no,
            record.split_count,
        )

    def render_size(self, record: ModelFile, value: int) -> str:
        size = format_html('<span title="{} bytes">{}</span>', f"{value:,}", human_size(value))
        if record.split_count and record.split_no == 1 and record.split_total_size:
            return format_html(
                '{}<span class="d-block small text-body-secondary" title="{} bytes">{} in all</span>',
                size,
                f"{record.split_total_size:,}",
                human_size(record.split_total_size),
            )
        return size

    @staticmethod
    def _nulls_last(queryset: QuerySet[ModelFile], field: str, is_descending: bool) -> tuple[QuerySet, bool]:
        # Files whose header gave no figure sort last both ways (SQLite and PostgreSQL disagree by default).
        column = F(field).desc(nulls_last=True) if is_descending else F(field).asc(nulls_last=True)
        return queryset.order_by(column, "-pk" if is_descending else "pk"), True

    def order_gguf_parameters(self, queryset: QuerySet[ModelFile], is_descending: bool) -> tuple[QuerySet, bool]:
        return self._nulls_last(queryset, "gguf_parameters", is_descending)

    def order_gguf_context_length(self, queryset: QuerySet[ModelFile], is_descending: bool) -> tuple[QuerySet, bool]:
        return self._nulls_last(queryset, "gguf_context_length", is_descending)

    def render_gguf_quantization(self, value: str) -> str:
        return value or UNSET

    def render_gguf_parameters(self, record: ModelFile, value: int | None) -> SafeString | str:
        if value is None:
            return UNSET
        label = record.gguf_size_label
        return format_html('<span title="{} parameters{}">{}</span>', f"{value:,}", f" ({label})" if label else "",
                           human_count(value))  # fmt: skip

    def render_gguf_context_length(self, value: int | None) -> str:
        return UNSET if value is None else f"{value:,}"

    def render_state(self, record: ModelFile, value: str) -> SafeString:
        return state_badge(record.state, modelfile_state_reason(record))

    def render_modified_at(self, value: datetime) -> SafeString | str:
        return relative_time(value)

    def render_aliases(self, record: ModelFile) -> SafeString | str:
        names = self.alias_names.get(record.pk, [])
        if not names:
            return UNSET
        links = []
        for name in names:
            url = alias_url("aliases:detail", name)
            links.append(format_html('<a href="{}">{}</a>', url, name) if url else format_html("{}", name))
        return format_html_join(", ", "{}", ((link,) for link in links))

    def render_checks(self, record: ModelFile) -> SafeString:
        """Corrupt or not, the latest verification, an update the check found; Verify / Re-pull / Update.

        Built in Python, not with a template per row: a template render per cell was most of the page's time."""
        context = getattr(self, "checks_context", {})
        found = []
        verification = self.latest_verifications.get(record.pk)
        if verification is not None:
            if verification.is_active:
                label = "verifying…"
            elif verification.status == Verification.Status.OK:
                label = f"verified {verification.finished_at:%Y-%m-%d}" if verification.finished_at else "verified"
            else:
                label = f"verification {verification.status}"
            found.append(format_html('<a href="{}" data-field="verification">{}</a>',
                                     reverse("modelfiles:verification", args=[record.pk]), label))  # fmt: skip
        if record.update_commit:
            found.append(format_html(
                '<span class="text-info-emphasis" data-field="update" title="{} now points at {}">'
                "Update available: {}, {}</span>",
                record.update_ref, record.update_commit, record.update_commit[:8], human_size(record.update_size),
            ))  # fmt: skip
        buttons = []
        if context.get("can_verify") and record.present:
            buttons.append(self._post_button("modelfiles:verify", record, "btn-outline-secondary", "Verify"))
        if context.get("can_pull") and record.state == ModelFile.State.CORRUPT:
            buttons.append(self._post_button("modelfiles:repull", record, "btn-danger", "Re-pull"))
        if context.get("can_pull") and record.update_commit:
            buttons.append(self._post_button("modelfiles:update", record, "btn-outline-primary", "Update"))
        return format_html(
            '<div class="d-flex flex-column align-items-start gap-1 small" data-field="checks">{}'
            '<div class="d-flex flex-wrap gap-1">{}</div></div>',
            format_html_join("", "{}", ((part,) for part in found)),
            format_html_join("", "{}", ((button,) for button in buttons)),
        )

    def _post_button(self, route: str, record: ModelFile, style: str, label: str) -> SafeString:
        context = self.checks_context
        return format_html(
            '<form method="post" action="{}" class="m-0"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="next" value="{}">'
            '<button type="submit" class="btn btn-sm {}">{}</button></form>',
            reverse(route, args=[record.pk]), context["csrf_token"], context["next_url"], style, label,
        )  # fmt: skip

    def render_actions(self, record: ModelFile) -> SafeString | str:
        actions = []
        # Only a file an alias could load (not a later part of a split model, not a damaged copy).
        if getattr(self, "can_create_alias", False) and record.can_load:
            query = urlencode({"repo": record.repo, "filename": record.filename, "snapshot": record.snapshot})
            actions.append(
                format_html(
                    '<a class="btn btn-sm btn-outline-primary text-nowrap" href="{}?{}">'
                    "Create alias from this file</a>",
                    self.create_alias_url,
                    query,
                )
            )
        if getattr(self, "can_delete", False):
            # A link to the confirmation page, which lists the aliases that would stop working.
            actions.append(
                format_html(
                    '<a class="btn btn-sm btn-outline-danger text-nowrap" href="{}">Delete</a>',
                    reverse("modelfiles:delete", args=[record.pk]),
                )
            )
        return format_html_join(" ", "{}", ((action,) for action in actions))

    @cached_property
    def create_alias_url(self) -> str:
        return reverse("aliases:create")  # once per table, not once per row


# --- downloads -----------------------------------------------------------------------------------------------------

STATUS_BADGES = {
    Download.Status.QUEUED: "text-bg-secondary",
    Download.Status.DOWNLOADING: "text-bg-primary",
    Download.Status.VERIFYING: "text-bg-info",
    Download.Status.PAUSED: "text-bg-dark",
    Download.Status.COMPLETED: "text-bg-success",
    Download.Status.FAILED: "text-bg-danger",
    Download.Status.CANCELLED: "text-bg-warning",
}
WAITING_TO_RETRY = "waiting_to_retry"
WAITING_BADGE = "text-bg-warning"


def status_badge(status: str) -> SafeString:
    return format_html('<span class="badge {}">{}</span>', STATUS_BADGES.get(status, "text-bg-light"), status)


@dataclass(frozen=True)
class DownloadState:
    """A download's state as every page words it, so the Active list, History and the dashboard agree."""

    key: str  # the status, or WAITING_TO_RETRY
    label: str
    badge: str
    detail: str = ""  # a line beside the badge: the queue place, the try it is on

    @property
    def live(self) -> bool:
        """Bytes are moving (or being hashed): the bar may stripe; anything else shows a still bar."""
        return self.key in (Download.Status.DOWNLOADING, Download.Status.VERIFYING)


def download_state(download: Download, *, now: datetime | None = None) -> DownloadState:
    """What state the download is in, in words. `queue_place` comes from selectors.download_active."""
    from modelfiles.services import MAX_ATTEMPTS

    status = download.status
    badge = STATUS_BADGES.get(status, "text-bg-light")
    place = getattr(download, "queue_place", None)
    if download.waiting_to_retry:
        now = now or timezone.now()
        left = max(0, math.ceil((download.retry_at - now).total_seconds()))
        label = f"waiting to retry (attempt {download.attempts + 1} of {MAX_ATTEMPTS}, next in {human_duration(left)})"
        return DownloadState(WAITING_TO_RETRY, label, WAITING_BADGE)
    if status == Download.Status.QUEUED:
        return DownloadState(status, status, badge, f"place {place} in the queue" if place else "")
    if status == Download.Status.PAUSED:
        return DownloadState(status, status, badge, f"back at place {place} when resumed" if place else "")
    if status == Download.Status.DOWNLOADING and download.attempts > 1:
        return DownloadState(status, status, badge, f"attempt {download.attempts} of {MAX_ATTEMPTS}")
    return DownloadState(status, status, badge)


def download_state_badge(state: DownloadState) -> SafeString:
    return format_html(
        '<span class="badge text-wrap {}" data-state="{}">{}</span>', state.badge, state.key, state.label
    )


def _cell(label: str, *classes: str, **attrs: str) -> dict[str, dict[str, str]]:
    """A History cell's attributes: its column name travels with it, for the cards narrow screens show."""
    td = {"data-label": label, **attrs}
    if classes:
        td["class"] = " ".join(classes)
    return {"td": td}


class DownloadTable(tables.Table):
    """The finished downloads, newest first by default; sortable, with the error message in full. The active ones
    are listed once, above it, with their live progress and their buttons. Below 768 px each row is a card."""

    created_at = tables.Column(
        verbose_name="Requested", order_by=("created_at", "pk"), attrs=_cell("Requested", "text-nowrap")
    )
    repo = tables.Column(order_by=("repo", "pk"), attrs=_cell("Repo", "text-break"))
    filename = tables.Column(order_by=("filename", "pk"), attrs=_cell("File", "text-break", "download-file"))
    revision = tables.Column(order_by=("revision", "pk"), attrs=_cell("Revision", "text-break"))
    host = tables.Column(verbose_name="Host", order_by=("host", "pk"), empty_values=(), attrs=_cell("Host"))
    status = tables.Column(verbose_name="State", order_by=("status", "pk"), attrs=_cell("State", "download-state"))
    bytes_total = tables.Column(
        verbose_name="Size", order_by=("bytes_total", "pk"), empty_values=(), attrs=_cell("Size")
    )
    attempts = tables.Column(
        verbose_name="Attempts",
        order_by=("attempts", "pk"),
        attrs={**_cell("Attempts", "text-end"), "th": {"class": "text-end"}},
    )
    requested_by = tables.Column(
        verbose_name="By", order_by=("requested_by__username", "pk"), empty_values=(), attrs=_cell("By")
    )
    finished_at = tables.Column(
        verbose_name="Finished", order_by=("finished_at", "pk"), empty_values=(), attrs=_cell("Finished", "text-nowrap")
    )
    error = tables.Column(
        verbose_name="Error", empty_values=(), orderable=False, attrs=_cell("Error", "download-error")
    )
    actions = tables.Column(
        verbose_name="",
        empty_values=(),
        orderable=False,
        attrs={**_cell("Actions", "text-end text-nowrap download-actions")},
    )

    class Meta:
        model = Download
        fields = (
            "created_at",
            "repo",
            "filename",
            "revision",
            "host",
            "status",
            "bytes_total",
            "attempts",
            "requested_by",
            "finished_at",
        )
        sequence = (*fields, "error", "actions")
        template_name = TABLE_TEMPLATE
        attrs = {"class": "table table-sm table-hover align-middle download-cards", "id": "download-rows"}
        row_attrs = {"data-download": lambda record: str(record.pk), "data-status": lambda record: record.status}
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    def __init__(self, *args: Any, next_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.next_url = next_url

    def before_render(self, request) -> None:
        self.can_retry = request.user.has_perm("modelfiles.retry_download")
        self.csrf_token = get_token(request)
        if not self.can_retry:
            self.columns.hide("actions")

    def render_created_at(self, value: datetime) -> SafeString | str:
        return relative_time(value)

    def render_host(self, value: str) -> str:
        return value or "any"

    def render_revision(self, record: Download, value: str) -> SafeString:
        if record.commit and record.commit != value:
            return format_html('{} <span class="text-body-secondary">→</span> {}', value, short_commit(record.commit))
        return format_html("{}", value)

    def render_status(self, record: Download) -> SafeString:
        return download_state_badge(download_state(record))

    # Names wrap at their separators (config/wrapping.py), never mid-word; a size never between number and unit.
    def render_repo(self, value: str) -> SafeString:
        return wrap_name(value)

    def render_filename(self, record: Download, value: str) -> SafeString:
        if record.parts <= 1:
            return wrap_name(value)
        return format_html(
            '{} <span class="badge text-bg-light border" title="A split model: one download for every part">'
            "{} parts</span>",
            wrap_name(value),
            record.parts,
        )

    def render_bytes_total(self, record: Download) -> str:
        # How far a failed one got; a cancelled one kept nothing (its partial file was deleted), so only its size.
        def size(value: int | None) -> str:
            return human_size(value).replace(" ", "\u00a0")

        if record.status != Download.Status.FAILED or not record.bytes_done or record.bytes_total is None:
            return size(record.bytes_total)
        percent = record.percent
        done = f"{size(record.bytes_done)} of {size(record.bytes_total)}"
        return f"{done} ({percent:.0f}\u00a0%)" if percent is not None else done

    def render_requested_by(self, record: Download) -> str:
        return record.requested_by.get_username() if record.requested_by else UNSET

    def render_finished_at(self, value: datetime | None) -> SafeString | str:
        return relative_time(value)

    def render_error(self, record: Download) -> SafeString | str:
        if not record.error_message and not record.error_code:
            return ""
        # The message is shown whole: it says what to do, and a cut one would not.
        return format_html(
            '<span class="badge text-bg-light border me-1">{}</span><span class="download-error-message">{}</span>',
            record.error_code or "error",
            record.error_message,
        )

    def render_actions(self, record: Download) -> SafeString | str:
        # Rendered without the request on purpose: a RequestContext per row would run every context processor
        # (and their queries) once per row.
        if not (getattr(self, "can_retry", False) and record.status in Download.RETRYABLE):
            return ""
        return render_to_string(
            "modelfiles/partials/_download_actions.html",
            {"record": record, "can_retry": True, "next_url": self.next_url, "csrf_token": self.csrf_token},
        )
