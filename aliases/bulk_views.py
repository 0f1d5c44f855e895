"""The alias list's bulk actions (issue 9, item 2): the action bar posts here; delete asks first; every other
action runs, then the list comes back with its search, filters and page and a message per outcome.
The work is aliases/bulk.py's; the API (aliases/bulk_api.py) calls the same functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views import View

from aliases.bulk import (
    BULK_FIELDS,
    BulkAction,
    BulkResult,
    BulkSelection,
    alias_bulk_apply,
    bulk_selection,
    export_formats,
    export_selection,
)
from aliases.forms import StopWordsField, display_value
from aliases.models import Alias
from aliases.presets.selectors import preset_get
from config.mixins import RoleRequiredMixin
from config.tables import safe_next

# The list's own query parameters (the page's names) that select-across carries, and the API's name for each.
LIST_FILTERS = {"q": "search", "source": "source", "repo": "repo", "file": "file"}
# Names listed in a message or on the confirmation page before "and N more".
LISTED = 20
CONFIRM_LISTED = 500


@dataclass(frozen=True)
class PostedSelection:
    """What the action bar (or the confirmation page) posted: ticked rows with the version each was shown at, or
    everything matching the list's filters as of the time the list was shown."""

    names: list[str] | None
    expected: dict[str, int]
    filters: dict[str, str] | None
    since: datetime | None

    @property
    def across(self) -> bool:
        return self.filters is not None


def posted_selection(request: HttpRequest) -> PostedSelection | None:
    """None when nothing was chosen; ValidationError when the page's token is missing (a page from elsewhere)."""
    if request.POST.get("select_across") == "1":
        since = parse_datetime(request.POST.get("rendered_at", ""))
        if since is None or since.tzinfo is None:
            raise ValidationError("The list's time is missing; reload the list and choose again.")
        filters = {api: value for page, api in LIST_FILTERS.items() if (value := request.POST.get(page, ""))}
        return PostedSelection(names=None, expected={}, filters=filters, since=since)
    expected: dict[str, int] = {}
    for value in request.POST.getlist("selected"):
        version, _, name = value.partition(":")
        if version.isdigit() and name:
            expected[name] = int(version)
    if not expected:
        return None
    return PostedSelection(names=list(expected), expected=expected, filters=None, since=None)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    more = len(names) - LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _plural(count: int) -> str:
    return f"{count} alias" if count == 1 else f"{count} aliases"


def _form_value(field: str, raw: str) -> Any:
    """The typed value as the alias form reads it (the same form field), e.g. "0.7" → 0.7, a stop word list."""
    form_field = forms.fields_for_model(Alias, fields=[field], field_classes={"stop": StopWordsField})[field]
    try:
        return form_field.clean(raw)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc


def _refusal(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items())
    return " ".join(exc.messages)


class AliasBulkView(RoleRequiredMixin, View):
    permission_required = "aliases.change_alias"
    http_method_names = ["post", "options"]
    confirm_template = "aliases/alias_bulk_confirm_delete.html"

    def back(self, request: HttpRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(safe_next(request) or reverse("aliases:list"))

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action", "")
        if action not in BulkAction.values:
            messages.error(request, "Choose an action for the selected aliases.")
            return self.back(request)
        if action == BulkAction.DELETE and not request.user.has_perm("aliases.delete_alias"):
            raise PermissionDenied("Your role does not allow deleting aliases.")
        try:
            posted = posted_selection(request)
            if posted is None:
                messages.warning(request, "Nothing was selected: tick the aliases first, or all matching.")
                return self.back(request)
            selection = bulk_selection(names=posted.names, filters=posted.filters)
            if action == BulkAction.EXPORT:
                fmt = request.POST.get("format", "json")
                return export_selection(selection.aliases, fmt if fmt in export_formats() else "json")
            if action == BulkAction.DELETE and request.POST.get("confirm") != "1":
                return self.confirm(request, posted, selection)
            return self.run(request, action, posted, selection)
        except ValidationError as exc:
            messages.error(request, f"Nothing was changed: {_refusal(exc)}")
            return self.back(request)

    def run(self, request: HttpRequest, action: str, posted: PostedSelection, selection: BulkSelection) -> HttpResponse:
        values: Any = None
        preset = None
        done = ""
        if action == BulkAction.SET:
            field = request.POST.get("field", "")
            if field not in BULK_FIELDS:
                raise ValidationError({"field": "Choose the parameter to set."})
            raw = request.POST.get("value", "")
            if not raw.strip():
                raise ValidationError({field: "Type the value to set (Clear unsets it)."})
            values = {field: _form_value(field, raw)}
            done = f"Set {field} to {display_value(values[field])} on"
        elif action == BulkAction.CLEAR:
            field = request.POST.get("field", "")
            if field not in BULK_FIELDS:
                raise ValidationError({"field": "Choose the parameter to clear."})
            values = [field]
            done = f"Cleared {field} on"
        elif action == BulkAction.APPLY_PRESET:
            preset = preset_get(name=request.POST.get("preset", ""))
            if preset is None:
                raise ValidationError({"preset": "Choose the preset to apply."})
            done = f"Applied preset {preset.name} to"
        else:
            done = "Deleted"
        result = alias_bulk_apply(
            action=action,
            selection=selection,
            by=request.user,
            values=values,
            preset=preset,
            expected=posted.expected,
            unchanged_since=posted.since,
        )
        self.report(request, result, done)
        return self.back(request)

    @staticmethod
    def report(request: HttpRequest, result: BulkResult, done: str) -> None:
        if result.changed:
            messages.success(request, f"{done} {_plural(len(result.changed))}: {_listed(result.changed)}.")
        if result.unchanged:
            messages.info(request, f"Already so, left as they were: {_listed(result.unchanged)}.")
        if result.skipped:
            reasons = [f"{skip.alias} ({skip.reason.rstrip('.')})" for skip in result.skipped]
            messages.warning(request, f"Skipped {_plural(len(result.skipped))}: {_listed(reasons)}.")
        if not (result.changed or result.unchanged or result.skipped):
            messages.info(request, "No alias matched; nothing was changed.")

    def confirm(self, request: HttpRequest, posted: PostedSelection, selection: BulkSelection) -> HttpResponse:
        aliases = list(selection.aliases.order_by("alias", "pk")[: CONFIRM_LISTED + 1])
        total = selection.aliases.count()
        context = {
            "to_delete": [alias for alias in aliases[:CONFIRM_LISTED] if not alias.is_read_only],
            "read_only": [alias for alias in aliases[:CONFIRM_LISTED] if alias.is_read_only],
            "missing": selection.missing,
            "total": total,
            "deletable": selection.aliases.filter(source=Alias.Source.USER).count(),
            "more": max(0, total - CONFIRM_LISTED),
            "posted": posted,
            "selected_values": [f"{version}:{name}" for name, version in posted.expected.items()],
            "filters": [(page, request.POST[page]) for page in LIST_FILTERS if request.POST.get(page)],
            "rendered_at": request.POST.get("rendered_at", ""),
            "next_url": safe_next(request),
        }
        return render(request, self.confirm_template, context)
