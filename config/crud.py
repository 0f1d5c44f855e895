"""What the pages and APIs of named, versioned objects with read-only rows share (aliases and presets): finding one
by name, refusing to change a read-only one, and deleting after a confirmation that names the version shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import django_tables2 as tables
from django.contrib import messages
from django.db.models import Model, QuerySet
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import ApiError
from config.mixins import RoleRequiredMixin
from config.tables import TABLE_TEMPLATE, safe_next


@dataclass(frozen=True)
class NamedKind:
    """One kind of named object, as its pages and API speak of it."""

    noun: str  # "alias": the template context name, the messages' word, the error codes' prefix
    lookup: Callable[[str], Model | None]  # by name, case-insensitively; None when there is none
    read_only_error: type[Exception]  # raised by its services; carries the object as attribute `noun`
    is_read_only: Callable[[Model], bool]
    list_url_name: str = ""
    read_only_template: str = ""

    # --- pages ---

    def get_or_404(self, name: str) -> Model:
        found = self.lookup(name)
        if found is None:
            raise Http404(f"No {self.noun} named {name!r}.")
        return found

    def back_to_list(self, request: HttpRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(safe_next(request) or reverse(self.list_url_name))

    def read_only_refusal(self, request: HttpRequest, found: Model) -> HttpResponse:
        context = {self.noun: found, "message": str(self.read_only_error(found)), "next_url": safe_next(request)}
        return render(request, self.read_only_template, context, status=403)

    # --- API ---

    def get_or_api_404(self, name: str) -> Model:
        found = self.lookup(name)
        if found is None:
            raise self.api_not_found(name)
        return found

    def api_not_found(self, name: str) -> ApiError:
        return ApiError(f"No {self.noun} named {name!r}.", status=404, code=f"{self.noun}_not_found")

    def api_read_only(self, found: Model) -> ApiError:
        return ApiError(str(self.read_only_error(found)), status=403, code=f"read_only_{self.noun}")


def posted_version(request: HttpRequest) -> int | None:
    """The version a confirmation page was shown with; None when the form did not send one."""
    try:
        return int(request.POST["version"])
    except (KeyError, ValueError):
        return None


class ConfirmDeleteView(RoleRequiredMixin, View):
    """GET: a page asking to confirm; POST: delete the version that page showed, then back to the list.

    A read-only object is refused either way; one changed since the page was shown is not deleted: the page comes
    back (409) with what it is now.
    """

    http_method_names = ["get", "post", "head", "options"]
    kind: NamedKind
    template_name = ""
    version_conflict: type[Exception]  # raised by the delete service; carries `current`

    def delete_object(self, *, found: Model, by: Any, expected_version: int | None) -> None:
        raise NotImplementedError

    def get(self, request: HttpRequest, **kwargs: str) -> HttpResponse:
        found = self.kind.get_or_404(*kwargs.values())
        if self.kind.is_read_only(found):
            return self.kind.read_only_refusal(request, found)
        return render(request, self.template_name, {self.kind.noun: found, "next_url": safe_next(request)})

    def post(self, request: HttpRequest, **kwargs: str) -> HttpResponse:
        found = self.kind.get_or_404(*kwargs.values())
        try:
            self.delete_object(found=found, by=request.user, expected_version=posted_version(request))
        except self.kind.read_only_error as exc:
            return self.kind.read_only_refusal(request, getattr(exc, self.kind.noun))
        except self.version_conflict as conflict:
            context = {self.kind.noun: conflict.current, "conflict": conflict, "next_url": safe_next(request)}
            return render(request, self.template_name, context, status=409)
        messages.success(request, f"Deleted {self.kind.noun} {found}.")
        return self.kind.back_to_list(request)


class NamedObjectDeleteApi:
    """DELETE for a named object's API view: 204, 404 when there is none, 403 when it is read-only."""

    kind: NamedKind

    def delete_object(self, *, found: Model, by: Any) -> None:
        raise NotImplementedError

    def delete_named(self, request: Request, name: str) -> Response:
        found = self.kind.get_or_api_404(name)
        if self.kind.is_read_only(found):
            raise self.kind.api_read_only(found)
        try:
            self.delete_object(found=found, by=request.user)
        except self.kind.read_only_error as exc:
            raise self.kind.api_read_only(getattr(exc, self.kind.noun)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class NamedObjectTable(tables.Table):
    """A list of named objects: each row links on with `next_url` (the list page it was shown on), and the name
    column (`name_field`) sorts ignoring case, as the names are unique ignoring case."""

    name_field = "name"

    class Meta:
        template_name = TABLE_TEMPLATE
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    def __init__(self, *args: Any, next_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.next_url = next_url

    def order_by_name(self, queryset: QuerySet, is_descending: bool) -> tuple[QuerySet, bool]:
        name = Lower(self.name_field).desc() if is_descending else Lower(self.name_field).asc()
        return queryset.order_by(name, "-pk" if is_descending else "pk"), True
