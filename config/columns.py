"""A column picker for list tables: each user chooses which optional columns they see, remembered server side.

Hidden columns are excluded from the table (never rendered, not merely hidden by CSS), so a narrower table is
also a cheaper page. The list view mixes in ColumnPickerMixin; a POST-only ColumnPickerView (one per table) saves
the choice and sends the user back to the list they came from, as a plain form submit or through htmx.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import django_tables2 as tables
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from django_htmx.http import HttpResponseLocation

from config.accounts.selectors import tablepreference_hidden
from config.accounts.services import tablepreference_set
from config.mixins import RoleRequiredMixin
from config.tables import safe_next


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns of a table a user may hide (in the order the picker lists them) and which start hidden."""

    key: str  # the preference's name, one per table
    optional: tuple[str, ...]
    default_hidden: tuple[str, ...] = ()

    def hidden_for(self, user) -> list[str]:
        chosen = tablepreference_hidden(user=user, table=self.key)
        hidden = self.default_hidden if chosen is None else chosen
        # A stored name the table no longer has is ignored, not an error.
        return [name for name in self.optional if name in hidden]


@cache
def column_labels(table_class: type[tables.Table]) -> dict[str, str]:
    """Each column's header as the table shows it (a model field's verbose name when the column has none)."""
    table = table_class(data=table_class._meta.model.objects.none())
    return {column.name: str(column.header) for column in table.columns}


class ColumnPickerMixin:
    """For a TableListView: leaves out the columns the user hides and gives the template the picker's choices."""

    column_choice: ColumnChoice
    columns_url_name = ""

    def hidden_columns(self) -> list[str]:
        """The user's hidden columns, less the one the list is sorted by (a link or bookmark may sort by a column
        the user hides; django-tables2 would silently ignore the order of an excluded column)."""
        if not hasattr(self, "_hidden_columns"):
            sort_field = self.get_table_class()._meta.order_by_field
            sorted_by = {name.lstrip("-") for name in self.request.GET.get(sort_field, "").split(",")}
            hidden = self.column_choice.hidden_for(self.request.user)
            self._hidden_columns = [name for name in hidden if name not in sorted_by]
        return self._hidden_columns

    def get_table_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_table_kwargs()
        kwargs["exclude"] = (*kwargs.get("exclude", ()), *self.hidden_columns())
        return kwargs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        labels = column_labels(self.get_table_class())
        hidden = self.hidden_columns()
        context["column_picker"] = {
            "url": reverse(self.columns_url_name),
            "columns": [
                {"name": name, "label": labels.get(name, name), "shown": name not in hidden}
                for name in self.column_choice.optional
            ],
            "hidden_count": len(hidden),
        }
        return context


class ColumnPickerView(RoleRequiredMixin, View):
    """Save the columns ticked in the picker (`columns`, repeated), or forget the choice (`reset`)."""

    http_method_names = ["post", "options"]
    column_choice: ColumnChoice
    list_url_name = ""
    # The element the list's table lives in, swapped again after an htmx submit.
    htmx_target = ""

    def post(self, request: HttpRequest) -> HttpResponse:
        choice = self.column_choice
        if "reset" in request.POST:
            hidden = None
        else:
            shown = set(request.POST.getlist("columns"))
            hidden = [name for name in choice.optional if name not in shown]
        tablepreference_set(user=request.user, table=choice.key, hidden_columns=hidden)
        back = safe_next(request) or reverse(self.list_url_name)
        if request.htmx:
            # The list again, into the table's container, as the list's own links fetch it.
            return HttpResponseLocation(back, target=self.htmx_target, swap="outerHTML")
        return HttpResponseRedirect(back)
