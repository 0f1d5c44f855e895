"""What every list page shares: django-tables2 + django-filter behind login and a permission, paging with a
page-size choice, and an htmx fragment instead of the whole page when htmx asks."""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import django_tables2 as tables
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.formats import localize
from django.utils.html import conditional_escape, escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString
from django.utils.timezone import template_localtime
from django.utils.translation import gettext
from django_filters.views import FilterView
from django_tables2 import RequestConfig, SingleTableMixin
from django_tables2.rows import BoundRows
from django_tables2.templatetags.django_tables2 import table_page_range
from django_tables2.utils import AttributeDict

from config.mixins import RoleRequiredMixin
from config.paging import page_rows

PAGE_SIZES = (10, 30, 100)
DEFAULT_PAGE_SIZE = 30
# The django-tables2 template of every table: Bootstrap 5, with sort and page links that also work through htmx.
TABLE_TEMPLATE = "includes/table.html"


def safe_url(candidate: str | None, request: HttpRequest) -> str:
    """`candidate` if it points back at this site, else ""."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def safe_next(request: HttpRequest) -> str:
    """The `next` a page was opened or a form posted with (a list with its query string), if it is ours."""
    return safe_url(request.POST.get("next") or request.GET.get("next"), request)


def wants_fragment(request: HttpRequest) -> bool:
    htmx = request.htmx
    # A history restore has nothing on screen to swap into: it needs the whole page.
    return bool(htmx) and not htmx.history_restore_request


def vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # The same URL answers with a fragment or a page depending on these headers; caches must tell them apart.
    patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
    return response


class IndexPaginator(Paginator):
    """Pages of a table over a queryset, read as config.paging does (keys from the index first, from the nearer
    end), so a deep page is not a walk over whole rows. Other data pages as django-tables2 pages it."""

    def page(self, number):
        rows = self.object_list
        queryset = getattr(getattr(rows, "data", None), "data", None)
        if not isinstance(rows, BoundRows) or not isinstance(queryset, QuerySet):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        records = page_rows(queryset, offset=bottom, limit=top - bottom, total=self.count)
        return self._get_page(BoundRows(records, table=rows.table, pinned_data=rows.pinned_data), number, self)


class TableListView(RoleRequiredMixin, SingleTableMixin, FilterView):
    """A sortable, paginated, filterable table; with htmx only the table's fragment is sent back."""

    http_method_names = ["get", "head", "options"]
    partial_template_name = ""
    list_url_name = ""

    def get_template_names(self) -> list[str]:
        return [self.partial_template_name if wants_fragment(self.request) else self.template_name]

    def page_size(self) -> int:
        try:
            size = int(self.request.GET.get("per_page", DEFAULT_PAGE_SIZE))
        except ValueError:
            return DEFAULT_PAGE_SIZE
        return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE

    def get_table(self, **kwargs: Any):
        table = self.get_table_class()(data=self.get_table_data(), **kwargs)
        # Sorting from the request; the page size is validated here because RequestConfig takes any number.
        RequestConfig(self.request, paginate=False).configure(table)
        try:
            table.paginate(
                paginator_class=IndexPaginator, page=self.request.GET.get("page") or 1, per_page=self.page_size()
            )
        except PageNotAnInteger:
            table.page = table.paginator.page(1)
        except EmptyPage:
            table.page = table.paginator.page(table.paginator.num_pages)
        return table

    def next_url(self) -> str:
        return self.request.get_full_path() if self.request.GET else ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            page_sizes=PAGE_SIZES,
            per_page=self.page_size(),
            filtering=self.filterset.is_filtering,
            list_url=reverse(self.list_url_name),
            next_url=self.next_url(),
            this_url=self.request.get_full_path(),
        )
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return vary_on_htmx(super().get(request, *args, **kwargs))


# --- a table body rendered in Python -------------------------------------------------------------------------------

# TABLE_TEMPLATE with its body rows taken from `table.body_rows` (FastBodyMixin): same markup, a fraction of the cost.
FAST_BODY_TABLE_TEMPLATE = "includes/table_fast_body.html"


class FastBodyMixin:
    """Renders a django-tables2 table's body rows in Python, for tables of many rows (the model files page).

    django-tables2 renders each cell through the template engine, computing the column's attributes and
    inspecting the render method's signature again for every cell: about 0.8 ms a row, so 100 rows cost more than
    the Django admin's whole changelist. Here the per-column work is done once per table and each cell is the
    same `render_<column>` call and the same `<td>` as django-tables2 would make. Columns that need more than a
    plain accessor (links, dotted accessors, choices, localize, computed attributes) are rendered by django-tables2
    itself, cell by cell, so any column still works; tests/test_fast_table_body.py compares the two outputs.
    """

    def body_rows(self) -> list[SafeString]:
        # Each cell's opening tag is built once per column; per cell only its content is rendered. The pieces
        # joined are either literal markup or already escaped (the attributes by as_html(), the content by
        # _shown()), so the join is as safe as format_html, without its escaping pass over every piece again.
        plans = [(bound, format_html("<td {}>", td), fast) for bound, td, fast in map(self._cell_plan, self.columns)]
        row_attrs = self._row_attrs_plan()
        rows = []
        for row in self.paginated_rows:
            parts = ["<tr ", self._row_attrs_html(row, row_attrs), ">"]
            for bound, opening, fast in plans:
                if fast is None:
                    parts.append(self._slow_cell(row, bound))
                else:
                    parts += (opening, fast(row), "</td>")
            parts.append("</tr>")
            rows.append(SafeString("".join(parts)))
        return rows

    # --- the header and the page links of includes/table.html, in Python (the same markup, less whitespace) ------

    def head_html(self) -> SafeString:
        """The table's <thead>: each sortable header a link (also through htmx) to the list sorted by it, from
        page 1; the sorted column marked with aria-sort and an arrow."""
        if not self.show_header:
            return SafeString("")
        cells = []
        for bound in self.columns:
            descending = bound.is_ordered and bound.order_by_alias.is_descending
            sort = ""
            if bound.is_ordered:
                sort = cell_html(' aria-sort="{}"', "descending" if descending else "ascending")
            header = _shown(bound.header)
            if bound.orderable:
                arrow = ""
                if bound.is_ordered:
                    arrow = cell_html('<span aria-hidden="true"> {}</span>', "▼" if descending else "▲")
                order = {self.prefixed_order_by_field: bound.order_by_alias.next}
                link = self._link_to(order, without=self.prefixed_page_field)
                header = cell_html('<a href="{}" hx-get="{}">{}{}</a>', link, link, header, arrow)
            cells.append(cell_html('<th {} scope="col"{}>{}</th>', bound.attrs["th"].as_html(), sort, header))
        thead = self.attrs.get("thead")
        thead_attrs = thead.as_html() if hasattr(thead, "as_html") else ""
        return cell_html("<thead {}><tr>{}</tr></thead>", thead_attrs, SafeString("".join(cells)))

    def pagination_html(self) -> SafeString:
        """Previous, a range of page numbers (with … for the pages left out) and next, as links through htmx."""
        page, paginator = getattr(self, "page", None), getattr(self, "paginator", None)
        if not page or paginator.num_pages <= 1:
            return SafeString("")
        field = self.prefixed_page_field
        items = []
        if page.has_previous():
            label = cell_html('<span aria-hidden="true">&laquo;</span> {}', gettext("previous"))
            items.append(self._step_link("previous", page.previous_page_number(), label))
        if page.has_previous() or page.has_next():
            for number in table_page_range(page, paginator):
                if number == "...":
                    items.append(SafeString('<li class="page-item disabled"><span class="page-link">…</span></li>'))
                    continue
                current = page.number == number
                link = self._link_to({field: number})
                items.append(cell_html(
                    '<li class="page-item{}"><a class="page-link" href="{}" hx-get="{}"{}>{}</a></li>',
                    " active" if current else "", link, link,
                    SafeString(' aria-current="page"') if current else "", _shown(number),
                ))  # fmt: skip
        if page.has_next():
            label = cell_html('{} <span aria-hidden="true">&raquo;</span>', gettext("next"))
            items.append(self._step_link("next", page.next_page_number(), label))
        return cell_html(
            '<nav aria-label="Table navigation"><ul class="pagination justify-content-center">{}</ul></nav>',
            SafeString("".join(items)),
        )

    def _step_link(self, direction: str, number: int, label: SafeString) -> SafeString:
        link = self._link_to({self.prefixed_page_field: number})
        return cell_html(
            '<li class="{} page-item"><a href="{}" hx-get="{}" class="page-link">{}</a></li>',
            direction,
            link,
            link,
            label,
        )

    def _link_to(self, updates: dict[str, Any], without: str | None = None) -> SafeString:
        """This page's path and query string with `updates` (and without `without`), escaped: the template's
        `{{ request.path }}{% querystring_replace … %}`."""
        if not hasattr(self, "_query_base"):
            self._query_base = (self.request.path, dict(self.request.GET))
        path, query = self._query_base
        params = {**query, **{key: value for key, value in updates.items() if key not in ("", None)}}
        if without is not None:
            params.pop(without, None)
        return escape(path) + escape("?" + urlencode(params, doseq=True))

    def _row_attrs_plan(self) -> list[tuple[str, Any, tuple[str, ...] | None]]:
        # The row attributes' callables, each with the arguments it takes (of `table` and `record`), inspected once
        # per table: django-tables2 inspects each one's signature again on every row.
        return [
            (key, value, tuple(name for name in _accepted_arguments(value) if name in ("table", "record")))
            if callable(value)
            else (key, value, None)
            for key, value in self.row_attrs.items()
        ]

    def _row_attrs_html(self, row, plan: list[tuple[str, Any, tuple[str, ...] | None]]) -> str:
        """`row.attrs.as_html()`, without inspecting the callables again."""
        offered = {"table": self, "record": row.record}
        attrs = {}
        for key, value, accepted in plan:
            attrs[key] = value if accepted is None else value(**{name: offered[name] for name in accepted})
            if isinstance(attrs[key], dict):
                return row.attrs.as_html()  # nested attributes: computed as django-tables2 does
        css_class = row.get_even_odd_css_class()
        attrs["class"] = f"{attrs['class']} {css_class}" if attrs.get("class") else css_class
        return _attributes_html(attrs)

    def _cell_plan(self, bound) -> tuple[Any, SafeString, Callable | None]:
        column = bound.column
        td_attrs = [attrs.get(key) or {} for attrs in (dict(self.attrs), column.attrs) for key in ("td", "cell")]
        simple = (
            type(column) is tables.Column
            and not column.link
            and column.localize is None
            and str(bound.accessor) == bound.name
            and not any(callable(value) for attrs in td_attrs for value in attrs.values())
            # A field with choices shows its label, unless the table renders the column itself.
            and (hasattr(self, f"render_{bound.name}") or not getattr(self._model_field(bound.name), "choices", None))
        )
        td = bound.attrs["td"].as_html()
        if not simple:
            return bound, td, None
        render = getattr(self, f"render_{bound.name}", None) or column.render
        accepted = _accepted_arguments(render)
        empty, default, name = column.empty_values, bound.default, bound.name
        # What every cell of the column passes the same, and which of the per-cell values the method takes.
        fixed = {key: value for key, value in (("column", column), ("bound_column", bound), ("table", self))
                 if key in accepted}  # fmt: skip
        takes_value, takes_record, takes_row = ("value" in accepted, "record" in accepted, "bound_row" in accepted)

        def fast(row) -> SafeString:
            record = row.record
            value = getattr(record, name, None)
            if callable(value) and not getattr(value, "do_not_call_in_templates", False):
                value = value()
            if value in empty:
                return conditional_escape(default)
            arguments = dict(fixed) if fixed else {}
            if takes_value:
                arguments["value"] = value
            if takes_record:
                arguments["record"] = record
            if takes_row:
                arguments["bound_row"] = row
            return _shown(render(**arguments))

        return bound, td, fast

    @staticmethod
    def _slow_cell(row, bound) -> SafeString:
        # As BoundRow.items does: the column's attributes may be computed from the record and the cell.
        cell = row.get_cell(bound.name)
        bound.current_value, bound.current_record = cell, row.record
        return format_html("<td {}>{}</td>", bound.attrs["td"].as_html(), _shown(cell))

    def _model_field(self, name: str):
        model = getattr(self._meta, "model", None)
        try:
            return model._meta.get_field(name) if model is not None else None
        except FieldDoesNotExist:
            return None


def cell_html(format_string: str, *args: Any) -> SafeString:
    """`format_html(format_string, *args)`: the same escaping of every argument (conditional_escape), for what
    each row of a long table renders. format_html's checks for lazy strings cost more than the escaping."""
    return SafeString(format_string.format(*map(escaped, args)))


def escaped(value: Any) -> str:
    # What conditional_escape gives a plain string (html.escape, as Django's escape()) and a safe one (itself),
    # without its checks for lazy strings: most arguments are one or the other.
    kind = type(value)
    if kind is str:
        return html.escape(value)
    return value if kind is SafeString else conditional_escape(value)


def _shown(cell: Any) -> SafeString:
    """A cell as `{{ cell }}` shows it: dates in the current time zone, numbers localized, escaped unless safe."""
    kind = type(cell)
    if kind is str:
        # What conditional_escape does to a plain string, without its checks for lazy and safe strings: most cells.
        return SafeString(html.escape(cell))
    if kind is SafeString:  # a render method's markup, as conditional_escape leaves it
        return cell
    if not isinstance(cell, str):
        cell = localize(template_localtime(cell))
    return conditional_escape(cell)


def _attributes_html(attrs: dict[str, Any]) -> str:
    """`AttributeDict(attrs).as_html()`: the same escaping, without a format_html per attribute."""
    shown = []
    for key, value in attrs.items():
        value = value() if callable(value) else value
        if key not in AttributeDict.blacklist and value is not None:
            shown.append(f'{escaped(key)}="{escaped(value)}"')
    return " ".join(shown)


def _accepted_arguments(function: Callable) -> tuple[str, ...]:
    # A table's methods are bound anew for every table: their signatures are read once per function.
    target, bound = getattr(function, "__func__", function), hasattr(function, "__self__")
    try:
        return _function_arguments(target, bound)
    except TypeError:  # an unhashable callable object
        return _function_arguments.__wrapped__(target, bound)


@lru_cache(maxsize=512)
def _function_arguments(function: Callable, bound: bool) -> tuple[str, ...]:
    parameters = list(inspect.signature(function).parameters.values())[1 if bound else 0 :]
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return ("value", "record", "column", "bound_column", "bound_row", "table")
    return tuple(parameter.name for parameter in parameters)
