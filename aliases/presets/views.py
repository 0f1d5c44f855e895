"""Preset pages (/presets/): list, detail, create (or copy), edit, delete; and the values the alias form applies."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from aliases.forms import display_value, field_label, stop_word_escape
from aliases.models import CONTEXT_PARAMS, REQUEST_PARAMS
from aliases.presets.filters import PresetFilter
from aliases.presets.forms import PresetForm, form_values
from aliases.presets.kinds import PRESETS
from aliases.presets.models import Preset
from aliases.presets.selectors import preset_get, preset_list
from aliases.presets.services import (
    PresetReadOnlyError,
    PresetVersionConflict,
    preset_copy_values,
    preset_create,
    preset_delete,
    preset_update,
    preset_values,
)
from aliases.presets.tables import PresetTable
from config.crud import ConfirmDeleteView
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next

_back_to_list = PRESETS.back_to_list
_get_preset = PRESETS.get_or_404
_read_only_refusal = PRESETS.read_only_refusal


class PresetListView(TableListView):
    permission_required = "presets.view_preset"
    filterset_class = PresetFilter
    table_class = PresetTable
    template_name = "aliases/presets/preset_list.html"
    partial_template_name = "aliases/presets/partials/_preset_table.html"
    list_url_name = "presets:list"

    def get_queryset(self):
        return preset_list()

    def get_table_kwargs(self) -> dict[str, Any]:
        return {"next_url": self.next_url()}


class PresetDetailView(RoleRequiredMixin, View):
    permission_required = "presets.view_preset"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, preset: str) -> HttpResponse:
        found = _get_preset(preset)
        groups = [
            (legend, [(field_label(name), _shown(name, getattr(found, name))) for name in names])
            for legend, names in (("Request parameters", REQUEST_PARAMS), ("Context parameters", CONTEXT_PARAMS))
        ]
        context = {"preset": found, "groups": groups, "next_url": safe_next(request)}
        return render(request, "aliases/presets/preset_detail.html", context)


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "not set (the alias keeps its own)"
    if name == "stop":
        return ", ".join(stop_word_escape(word) for word in value)
    return display_value(value)


class PresetFormView(RoleRequiredMixin, View):
    http_method_names = ["get", "post", "head", "options"]
    template_name = "aliases/presets/preset_form.html"

    def render_form(self, form: PresetForm, status: int = 200, **extra: Any) -> HttpResponse:
        context = {"form": form, "next_url": safe_next(self.request), **extra}
        return render(self.request, self.template_name, context, status=status)


class PresetCreateView(PresetFormView):
    """A new preset; `?from=<preset>` starts from a copy of another (the way to change a built-in one)."""

    permission_required = "presets.add_preset"

    def get(self, request: HttpRequest) -> HttpResponse:
        source = preset_get(name=request.GET["from"]) if request.GET.get("from") else None
        initial = preset_copy_values(source=source) if source is not None else {}
        return self.render_form(PresetForm(initial=initial), mode="create", source=source)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PresetForm(data=request.POST)
        if form.is_valid():
            try:
                preset = preset_create(data=form.service_data(), by=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Created preset {preset.name}.")
                return HttpResponseRedirect(reverse("presets:detail", args=[preset.name]))
        return self.render_form(form, mode="create")


class PresetEditView(PresetFormView):
    permission_required = "presets.change_preset"

    def get(self, request: HttpRequest, preset: str) -> HttpResponse:
        found = _get_preset(preset)
        if found.builtin:
            return _read_only_refusal(request, found)
        return self.render_form(PresetForm(instance=found), mode="edit", preset=found)

    def post(self, request: HttpRequest, preset: str) -> HttpResponse:
        found = _get_preset(preset)
        if found.builtin:
            return _read_only_refusal(request, found)
        original_name = found.name
        form = PresetForm(data=request.POST, instance=found)
        if form.is_valid():
            try:
                saved = preset_update(
                    preset=found,
                    data=form.service_data(),
                    expected_version=form.cleaned_data["version"],
                    by=request.user,
                )
            except PresetVersionConflict as conflict:
                form.data = form.data.copy()
                form.data["version"] = str(conflict.current.version)
                return self.render_form(form, status=409, mode="edit", preset=conflict.current, conflict=conflict)
            except PresetReadOnlyError as exc:
                return _read_only_refusal(request, exc.preset)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Saved preset {saved.name}.")
                return _back_to_list(request)
        found.name = original_name
        return self.render_form(form, mode="edit", preset=found)


class PresetDeleteView(ConfirmDeleteView):
    permission_required = "presets.delete_preset"
    template_name = "aliases/presets/preset_confirm_delete.html"
    kind = PRESETS
    version_conflict = PresetVersionConflict

    def delete_object(self, *, found: Preset, by: Any, expected_version: int | None) -> None:
        preset_delete(preset=found, by=by, expected_version=expected_version)


class PresetFormValuesView(RoleRequiredMixin, View):
    """The preset's values as the alias form's inputs hold them: its "Apply" fills the fields from this."""

    permission_required = "presets.view_preset"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, preset: str) -> HttpResponse:
        found = _get_preset(preset)
        return JsonResponse({"preset": found.name, "values": form_values(preset_values(found))})
