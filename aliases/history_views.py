"""Alias version history pages: versions, a diff of any two, revert, and the deleted aliases with restore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from aliases.forms import display_value, field_label
from aliases.models import EDITABLE_FIELDS, Alias, AliasChange
from aliases.selectors import alias_deleted_list, alias_get, alias_names_taken, alias_versions
from aliases.services import AliasReadOnlyError, AliasRestoreError, alias_restore, alias_revert
from config.mixins import RoleRequiredMixin

DELETED_LIST_LENGTH = 200
# The newest versions shown (and comparable) on the page; the API pages through all of them.
HISTORY_PAGE_LENGTH = 200


def _get_alias(name: str) -> Alias:
    alias = alias_get(name=name)
    if alias is None:
        raise Http404(f"No alias named {name!r}.")
    return alias


def _version_number(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) <= 9 else None


def diff_rows(older: Mapping[str, Any], newer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every editable field of two saved states side by side, marking those that differ."""
    return [
        {
            "label": field_label(name),
            "older": display_value(older.get(name)),
            "newer": display_value(newer.get(name)),
            "changed": older.get(name) != newer.get(name),
        }
        for name in EDITABLE_FIELDS
    ]


def _readable_changes(changes: Mapping[str, tuple[Any, Any]]) -> list[tuple[str, str, str]]:
    """(label, before, after) for each change a person can see: a create records an empty stop list and user as
    set from nothing, which would read "— → —"."""
    shown = ((field_label(name), display_value(old), display_value(new)) for name, (old, new) in changes.items())
    return [row for row in shown if row[1] != row[2]]


class AliasHistoryView(RoleRequiredMixin, View):
    """Every saved version of an alias; ?a=<n>&b=<m> adds a table comparing two of them."""

    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, name: str) -> HttpResponse:
        alias = _get_alias(name)
        versions = list(alias_versions(alias=alias)[:HISTORY_PAGE_LENGTH])
        by_number = {record.version: record for record in reversed(versions)}  # the newest record per number wins
        rows = [(record, _readable_changes(record.changes)) for record in versions]
        context: dict[str, Any] = {"alias": alias, "rows": rows}
        first, second = _version_number(request.GET.get("a")), _version_number(request.GET.get("b"))
        if request.GET.get("a") or request.GET.get("b"):
            if first in by_number and second in by_number:
                older, newer = sorted((by_number[first], by_number[second]), key=lambda r: r.version)
                context.update(older=older, newer=newer, diff=diff_rows(older.snapshot, newer.snapshot))
            else:
                context["compare_error"] = "Pick two saved versions of this alias to compare."
        return render(request, "aliases/alias_history.html", context)


class AliasRevertView(RoleRequiredMixin, View):
    """Confirm, then save a new version equal to an older one."""

    permission_required = "aliases.change_alias"
    http_method_names = ["get", "post", "head", "options"]

    def _target(self, name: str, version: int) -> tuple[Alias, AliasChange]:
        alias = _get_alias(name)
        record = alias_versions(alias=alias).filter(version=version).first()
        if record is None:
            raise Http404(f"{alias.alias!r} has no saved version {version}.")
        return alias, record

    def get(self, request: HttpRequest, name: str, version: int) -> HttpResponse:
        alias, record = self._target(name, version)
        context = {"alias": alias, "record": record, "diff": diff_rows(record.snapshot, alias.values())}
        return render(request, "aliases/alias_confirm_revert.html", context)

    def post(self, request: HttpRequest, name: str, version: int) -> HttpResponse:
        alias, _record = self._target(name, version)
        try:
            saved = alias_revert(alias=alias, version=version, by=request.user)
        except AliasReadOnlyError as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            messages.error(request, f"Not reverted: {'; '.join(exc.messages)}")
        else:
            messages.success(request, f"Reverted {saved.alias} to version {version}; saved as version {saved.version}.")
            return HttpResponseRedirect(reverse("aliases:history", args=[saved.alias]))
        return HttpResponseRedirect(reverse("aliases:history", args=[alias.alias]))


class DeletedAliasListView(RoleRequiredMixin, View):
    permission_required = "aliases.add_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        records = list(alias_deleted_list()[:DELETED_LIST_LENGTH])
        taken = alias_names_taken(names=[record.alias_name for record in records])
        rows = [(record, record.alias_name.lower() in taken) for record in records]
        return render(request, "aliases/alias_deleted_list.html", {"rows": rows})


class DeletedAliasRestoreView(RoleRequiredMixin, View):
    """POST only (the list's button): restore under the old name, or the `new_name` given."""

    permission_required = "aliases.add_alias"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        new_name = request.POST.get("new_name", "").strip()
        try:
            restored = alias_restore(name=name, by=request.user, new_name=new_name)
        except AliasRestoreError as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            messages.error(request, f"Not restored: {'; '.join(exc.messages)}")
        else:
            messages.success(request, f"Restored alias {restored.alias} (version {restored.version}).")
            return HttpResponseRedirect(reverse("aliases:detail", args=[restored.alias]))
        return HttpResponseRedirect(reverse("aliases:deleted"))
