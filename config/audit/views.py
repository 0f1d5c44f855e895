"""The audit log pages (admins): the list, one entry's before/after, and the list exported as CSV or JSON."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from config.audit.diff import diff_rows
from config.audit.filters import AuditFilter
from config.audit.models import AuditEntry
from config.audit.selectors import audit_entry_data
from config.audit.tables import AuditTable, actor_label
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next

PERMISSION = "audit.view_auditentry"
# An export streams, so memory is not the limit; this keeps one click from reading a log of millions of rows.
# Narrow the filters (a date range) to export more, in parts.
EXPORT_MAX_ROWS = 50_000
CSV_COLUMNS = ("id", "at", "actor", "kind", "action", "object_id", "object_repr", "before", "after")
# Characters that make a spreadsheet read a cell as a formula (usernames may start with + - @).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Query parameters of the list page that are not filters or the sort.
_PAGE_PARAMS = ("page", "per_page")


class AuditListView(TableListView):
    permission_required = PERMISSION
    filterset_class = AuditFilter
    table_class = AuditTable
    template_name = "audit/auditentry_list.html"
    partial_template_name = "audit/partials/_audit_table.html"
    list_url_name = "audit:list"

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return AuditEntry.objects.all()

    def get_table_kwargs(self) -> dict[str, Any]:
        return {"next_url": self.next_url()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # The exports take the list's filters and sort, not its page: they are the whole filtered list.
        query = urlencode(
            [(key, value) for key, value in self.request.GET.items() if key not in _PAGE_PARAMS and value]
        )
        suffix = f"?{query}" if query else ""
        context.update(
            export_csv_url=reverse("audit:export-csv") + suffix,
            export_json_url=reverse("audit:export-json") + suffix,
            object_id=self.filterset.object_id,
            export_max_rows=EXPORT_MAX_ROWS,
        )
        return context


class AuditDetailView(RoleRequiredMixin, View):
    permission_required = PERMISSION
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        entry = get_object_or_404(AuditEntry, pk=pk)
        rows = diff_rows(entry.before, entry.after)
        history_url = ""
        if entry.object_id:
            query = urlencode({"kind": entry.kind, "object_id": entry.object_id})
            history_url = f"{reverse('audit:list')}?{query}"
        return render(
            request,
            "audit/auditentry_detail.html",
            {
                "entry": entry,
                "actor": actor_label(entry),
                "changed_rows": [row for row in rows if row.changed],
                "other_rows": [row for row in rows if not row.changed],
                "object_url": _object_url(entry),
                "history_url": history_url,
                "next_url": safe_next(request),
            },
        )


def _object_url(entry: AuditEntry) -> str:
    """The page of the object the entry is about, while it still exists (aliases have one)."""
    if entry.kind == AuditEntry.Kind.ALIAS and entry.object_id.isdigit():
        from aliases.models import Alias

        alias = Alias.objects.filter(pk=int(entry.object_id)).only("alias").first()
        if alias is not None:
            return reverse("aliases:detail", args=[alias.alias])
    return ""


# --- exports -------------------------------------------------------------------------------------------------------


class _Echo:
    """A file-like object for csv.writer that hands each row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _csv_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for entry in entries:
        data = audit_entry_data(entry)
        yield writer.writerow([_csv_cell(data[column]) for column in CSV_COLUMNS])


def _json_chunks(entries: Iterable[AuditEntry], *, total: int) -> Iterator[str]:
    head = {"total": total, "truncated": total > EXPORT_MAX_ROWS, "limit": EXPORT_MAX_ROWS}
    # The envelope is written around the rows as they stream: `data` comes last.
    yield json.dumps(head)[:-1] + ', "data": ['
    separator = ""
    for entry in entries:
        yield separator + json.dumps(audit_entry_data(entry), ensure_ascii=False, cls=DjangoJSONEncoder)
        separator = ",\n"
    yield "]}\n"


class AuditExportView(RoleRequiredMixin, View):
    """The list as the admin filtered and sorted it, every page, streamed (at most EXPORT_MAX_ROWS rows)."""

    permission_required = PERMISSION
    http_method_names = ["get", "head", "options"]
    export_format = "csv"

    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = AuditFilter(data=request.GET, queryset=AuditEntry.objects.all(), request=request)
        if not filterset.is_valid():
            problems = "; ".join(
                f"{filterset.form.fields[name].label}: {' '.join(errors)}" for name, errors in filterset.errors.items()
            )
            return HttpResponseBadRequest(f"Invalid filters: {problems}", content_type="text/plain; charset=utf-8")
        table = AuditTable(filterset.qs)
        if request.GET.get("sort"):
            table.order_by = request.GET["sort"]  # the table's own sort names; unknown ones are ignored
        queryset = table.data.data
        total = queryset.count()
        entries = queryset[:EXPORT_MAX_ROWS].iterator(chunk_size=500)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if self.export_format == "json":
            response = StreamingHttpResponse(_json_chunks(entries, total=total), content_type="application/json")
        else:
            response = StreamingHttpResponse(_csv_lines(entries), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{self.export_format}"'
        response["X-Total-Count"] = str(total)
        response["X-Export-Truncated"] = "true" if total > EXPORT_MAX_ROWS else "false"
        return response
