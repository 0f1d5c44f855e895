"""Alias pages. Thin: check the permission, validate the form, call one service, render or redirect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views import View

from aliases.file_status import FileStatus, alias_file, split_parts
from aliases.filters import AliasFilter
from aliases.forms import SECTIONS, AliasForm, display_value, field_label, stop_word_escape
from aliases.kinds import ALIASES
from aliases.models import EDITABLE_FIELDS, Alias, AliasChange
from aliases.presets.forms import form_values
from aliases.presets.selectors import preset_get, preset_list
from aliases.presets.services import preset_values
from aliases.selectors import alias_get, alias_list, model_choices
from aliases.services import (
    AliasReadOnlyError,
    AliasVersionConflict,
    alias_copy_values,
    alias_create,
    alias_delete,
    alias_update_merged,
)
from aliases.tables import AliasTable, alias_url, file_status_badge
from aliases.validators import ALIAS_NAME_RE
from config.columns import ColumnChoice, ColumnPickerMixin, ColumnPickerView
from config.crud import ConfirmDeleteView
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next, safe_url, vary_on_htmx, wants_fragment
from modelfiles.models import Download
from modelfiles.selectors import download_get

HISTORY_LENGTH = 20
# How long after its download completed an alias page keeps asking whether the file is listed yet.
LISTING_GRACE = timedelta(seconds=30)


_back_to_list = ALIASES.back_to_list
_get_alias = ALIASES.get_or_404
_read_only_refusal = ALIASES.read_only_refusal


def _to_new_alias(request: HttpRequest, alias: Alias) -> HttpResponseRedirect:
    """After Create or Duplicate: the new alias's own page (the list it came from may not show it on that page),
    keeping the way back to that list."""
    page = alias_url("aliases:detail", alias.alias)
    if page is None:
        return _back_to_list(request)
    back = safe_next(request)
    return HttpResponseRedirect(f"{page}?{urlencode({'next': back})}" if back else page)


# Source and snapshot are the same on most rows of a typical shelf: hidden until the user asks for them.
ALIAS_COLUMNS = ColumnChoice(
    key="aliases",
    # Every column but the name (the row's link) and its actions, in the table's order.
    optional=("file_status", *(name for name in AliasTable._meta.fields if name != "alias")),
    default_hidden=("source", "snapshot"),
)


class AliasListView(ColumnPickerMixin, TableListView):
    permission_required = "aliases.view_alias"
    column_choice = ALIAS_COLUMNS
    columns_url_name = "aliases:columns"
    filterset_class = AliasFilter
    table_class = AliasTable
    template_name = "aliases/alias_list.html"
    partial_template_name = "aliases/partials/_alias_table.html"
    list_url_name = "aliases:list"

    def get_queryset(self):
        return alias_list()

    def get_table_kwargs(self) -> dict[str, Any]:
        return {**super().get_table_kwargs(), "next_url": self.next_url()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # The export links carry the list's search and filters (aliases/import_views.py reads the same names).
        kept = [(key, value) for key in ("q", "source", "repo", "file") if (value := self.request.GET.get(key))]
        context.update(
            export_formats=(("bodhi-yaml", "BodhiApp YAML"), ("json", "JSON"), ("csv", "CSV")),
            export_query=urlencode(kept),
        )
        return context


class AliasColumnsView(ColumnPickerView):
    """The alias list's column picker: every reader chooses their own columns."""

    permission_required = "aliases.view_alias"
    column_choice = ALIAS_COLUMNS
    list_url_name = "aliases:list"
    htmx_target = "#alias-table"


class AliasDetailView(RoleRequiredMixin, View):
    """Read-only view of one alias, for every role; editors also get its write buttons."""

    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, name: str) -> HttpResponse:
        alias = _get_alias(name)
        if wants_fragment(request):
            # The File section's own poll: the rest of the page does not change while a download runs.
            context = {"alias": alias, **self.file_context(request, alias)}
            return vary_on_htmx(render(request, "aliases/partials/_alias_file.html", context))
        sections = [
            (legend, [(sub_legend, [self.item(alias, field) for field in fields]) for sub_legend, fields in groups])
            for legend, groups in SECTIONS
        ]
        history = [
            (
                change,
                [(field, display_value(old), display_value(new)) for field, (old, new) in change.changes.items()],
            )
            for change in AliasChange.objects.filter(alias=alias).select_related("changed_by")[:HISTORY_LENGTH]
        ]
        context = {
            "alias": alias,
            "sections": sections,
            "history": history,
            "next_url": safe_next(request),
            **self.file_context(request, alias),
        }
        return vary_on_htmx(render(request, "aliases/alias_detail.html", context))

    @staticmethod
    def file_context(request: HttpRequest, alias: Alias) -> dict[str, Any]:
        """The File section: the file's status, "Pull this file" for those who may pull, and whether it polls."""
        found = alias_file(alias)
        # "Pull this file" (or each missing part of a split model) for those who may pull.
        pulls = []
        if request.user.has_perm("modelfiles.request_download") and found.status in (
            FileStatus.MISSING,
            FileStatus.INCOMPLETE,
        ):
            # A split model is one pull, whichever part is named: it brings the parts that are missing.
            pulls = [split_parts(alias.filename)[0]]
        # The poll names the download it watches: the worker marks it completed a moment before it lists the file,
        # and a poll in between must not stop on "missing"; one that failed says why.
        ended = None
        if found.download is None and found.status != FileStatus.LOCAL and (watched := request.GET.get("download")):
            ended = download_get(download_id=watched)
            ours = ended is not None and ended.repo == alias.repo and ended.filename in split_parts(alias.filename)
            if not ours or ended.status in Download.ACTIVE:
                ended = None
        if ended is not None and ended.status == Download.Status.COMPLETED:
            recently = ended.finished_at is not None and timezone.now() - ended.finished_at < LISTING_GRACE
            ended = ended if recently else None
        listing = ended if ended is not None and ended.status == Download.Status.COMPLETED else None
        if listing is not None:
            pulls = []  # it is here, just not listed yet
        polled = found.download or listing
        here_url = request.get_full_path()
        if wants_fragment(request):
            here_url = safe_url(request.htmx.current_url_abs_path, request) or request.path
        # A damaged copy: one click removes it and downloads the same commit again.
        may_pull = request.user.has_perm("modelfiles.request_download")
        repull = found.modelfile if may_pull and found.status == FileStatus.CORRUPT and found.modelfile else None
        return {
            "file": found,
            "file_badge": file_status_badge(found),
            "pulls": pulls,
            "repull": repull,
            "here_url": here_url,
            "ended": ended,
            "poll_url": f"{request.path}?{urlencode({'download': polled.pk})}" if polled else "",
        }

    @staticmethod
    def item(alias: Alias, field: str) -> dict[str, Any]:
        value = getattr(alias, field)
        if field == "stop":
            # Each word on its own, escaped as the form shows it, so a newline or a comma is not lost.
            return {"name": field, "label": field_label(field), "words": [stop_word_escape(w) for w in value]}
        return {"name": field, "label": field_label(field), "value": display_value(value)}


class AliasFormView(RoleRequiredMixin, View):
    http_method_names = ["get", "post", "head", "options"]
    template_name = "aliases/alias_form.html"

    def render_form(self, form: AliasForm, status: int = 200, **extra: Any) -> HttpResponse:
        context = {"form": form, "next_url": safe_next(self.request), "presets": preset_list(), **extra}
        return render(self.request, self.template_name, context, status=status)

    def preset_initial(self, request: HttpRequest) -> dict[str, Any] | None:
        """ "Apply" without JavaScript: the values typed so far with the chosen preset's on top; nothing saved."""
        if "apply_preset" not in request.POST:
            return None
        initial: dict[str, Any] = {
            name: request.POST[name] for name in (*EDITABLE_FIELDS, "version") if name in request.POST
        }
        preset = preset_get(name=request.POST.get("preset", ""))
        if preset is None:
            messages.warning(request, "Choose a preset to apply.")
        else:
            initial.update(form_values(preset_values(preset)))
            messages.info(
                request,
                f"Applied preset {preset.name}: its fields are filled in below. Nothing is saved until you save.",
            )
        return initial


class AliasCreateView(AliasFormView):
    permission_required = "aliases.add_alias"

    def get(self, request: HttpRequest) -> HttpResponse:
        # "Create alias from this file" on the model files page arrives with the file's repo/filename/snapshot.
        initial = {name: request.GET[name] for name in ("repo", "filename", "snapshot") if request.GET.get(name)}
        # "New alias from preset" on a preset's page.
        preset = preset_get(name=request.GET["preset"]) if request.GET.get("preset") else None
        if preset is not None:
            initial.update(form_values(preset_values(preset)))
        return self.render_form(AliasForm(initial=initial), mode="create", applied_preset=preset)

    def post(self, request: HttpRequest) -> HttpResponse:
        if (initial := self.preset_initial(request)) is not None:
            return self.render_form(AliasForm(initial=initial), mode="create")
        form = AliasForm(data=request.POST)
        if form.is_valid():
            try:
                alias = alias_create(data=form.service_data(), by=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Created alias {alias.alias}.")
                return _to_new_alias(request, alias)
        return self.render_form(form, mode="create")


class AliasDuplicateView(AliasFormView):
    """The create form prefilled from another alias (also the way to edit a copy of a read-only one)."""

    permission_required = "aliases.add_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, name: str) -> HttpResponse:
        source = _get_alias(name)
        # A copy of owner/repo:Q4_K_M is suggested as repo:Q4_K_M (user alias names have no slash).
        suggestion = source.alias.split("/", 1)[1] if "/" in source.alias else f"{source.alias}-copy"
        if not ALIAS_NAME_RE.fullmatch(suggestion) or alias_get(name=suggestion) is not None:
            suggestion = ""
        form = AliasForm(initial=alias_copy_values(source=source, new_name=suggestion))
        return self.render_form(form, mode="duplicate", source=source)


@dataclass(frozen=True)
class ConflictRow:
    field: str
    label: str
    base: str
    theirs: str
    yours: str
    needs_choice: bool
    choice: str


RESOLUTION_PREFIX = "resolve_"


class AliasEditView(AliasFormView):
    permission_required = "aliases.change_alias"

    def get(self, request: HttpRequest, name: str) -> HttpResponse:
        alias = _get_alias(name)
        if alias.is_read_only:
            return _read_only_refusal(request, alias)
        return self.render_form(AliasForm(instance=alias), mode="edit", alias=alias)

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        alias = _get_alias(name)
        if alias.is_read_only:
            return _read_only_refusal(request, alias)
        if (initial := self.preset_initial(request)) is not None:
            return self.render_form(AliasForm(instance=alias, initial=initial), mode="edit", alias=alias)
        original_name = alias.alias
        form = AliasForm(data=request.POST, instance=alias)
        # Per field both editors changed: "theirs" or "mine", chosen on the conflict table of the previous answer.
        resolutions = {
            key.removeprefix(RESOLUTION_PREFIX): value
            for key, value in request.POST.items()
            if key.startswith(RESOLUTION_PREFIX)
        }
        if form.is_valid():
            try:
                result = alias_update_merged(
                    alias=alias,
                    data=form.service_data(),
                    base_version=form.cleaned_data["version"],
                    by=request.user,
                    resolutions=resolutions,
                )
            except AliasVersionConflict as conflict:
                rows = [
                    ConflictRow(
                        field=change.field,
                        label=field_label(change.field),
                        base=display_value(change.base),
                        theirs=display_value(change.theirs),
                        yours=display_value(form.cleaned_data.get(change.field)),
                        needs_choice=change.field in conflict.conflicts,
                        choice=resolutions.get(change.field, ""),
                    )
                    for change in conflict.changes
                ]
                if not conflict.mergeable:
                    # The version the editor opened is not on record: the next save knowingly replaces this one.
                    form.rebase(conflict.current.version)
                return self.render_form(
                    form, status=409, mode="edit", alias=conflict.current, conflict=conflict, conflict_rows=rows
                )
            except AliasReadOnlyError as exc:
                return _read_only_refusal(request, exc.alias)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                saved = result.alias
                if not result.changed:
                    # Nothing differs from what is saved: no new version, no audit entry, updated_at untouched.
                    messages.info(request, f"No changes to save: alias {saved.alias} is as it was.")
                elif result.kept_theirs:
                    kept = ", ".join(field_label(name) for name in result.kept_theirs)
                    mine = ", ".join(field_label(name) for name in result.applied) or "nothing"
                    messages.success(
                        request,
                        f"Saved alias {saved.alias}, merged with changes saved meanwhile: kept theirs for {kept}; "
                        f"applied yours for {mine}.",
                    )
                else:
                    messages.success(request, f"Saved alias {saved.alias}.")
                return _back_to_list(request)
        # The form wrote the typed values onto the instance; the page header keeps naming the stored alias.
        alias.alias = original_name
        return self.render_form(form, mode="edit", alias=alias)


class AliasDeleteView(ConfirmDeleteView):
    permission_required = "aliases.delete_alias"
    template_name = "aliases/alias_confirm_delete.html"
    kind = ALIASES
    version_conflict = AliasVersionConflict

    def delete_object(self, *, found: Alias, by: Any, expected_version: int | None) -> None:
        alias_delete(alias=found, by=by, expected_version=expected_version)


class ModelOptionsView(RoleRequiredMixin, View):
    """Fresh filename and snapshot suggestions for the alias form once a repo (and filename) is chosen."""

    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        choices = model_choices(
            repo=request.GET.get("repo", "").strip(), filename=request.GET.get("filename", "").strip()
        )
        return render(request, "aliases/partials/_model_options.html", {"choices": choices})
