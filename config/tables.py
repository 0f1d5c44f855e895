"""What every list page shares: django-tables2 + django-filter behind login and a permission, paging with a
page-size choice, and an htmx fragment instead of the whole page when htmx asks."""

from __future__ import annotations

from typing import Any

from django.core.paginator import EmptyPage, PageNotAnInteger
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_filters.views import FilterView
from django_tables2 import RequestConfig, SingleTableMixin

from config.mixins import RoleRequiredMixin

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
            table.paginate(page=self.request.GET.get("page") or 1, per_page=self.page_size())
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
