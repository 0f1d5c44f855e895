"""The import page (upload → preview → apply) and the export download (issue 9, item 3).

The uploaded files are kept in the session between the preview and the apply, so the user can change the conflict
choice or accept offered values without uploading again; the formats live in aliases/transfer.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from aliases.services import AliasVersionConflict, alias_import
from aliases.transfer import (
    CONFLICT_CHOICES,
    FORMATS,
    TransferError,
    format_for_filename,
    parse,
    plan_counts,
    plan_import,
)
from aliases.transfer_api import export_response, exported_aliases
from config.mixins import RoleRequiredMixin
from config.tables import safe_next

SESSION_KEY = "alias_import_files"
CONFLICT_LABELS = {
    "skip": "Skip: keep the existing alias",
    "overwrite": "Overwrite the existing alias",
    "rename": "Rename: import under a free name (name-2, …)",
}


def _fixes(request: HttpRequest) -> dict[int, list[str]]:
    """The offered values the user accepted: checkboxes named `fix` with values `row:field`."""
    fixes: dict[int, list[str]] = {}
    for value in request.POST.getlist("fix"):
        number, _, field = value.partition(":")
        if number.isdigit() and field:
            fixes.setdefault(int(number), []).append(field)
    return fixes


class AliasImportView(RoleRequiredMixin, View):
    permission_required = ("aliases.add_alias", "aliases.change_alias")
    http_method_names = ["get", "post", "head", "options"]
    template_name = "aliases/alias_import.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request)

    def render(self, request: HttpRequest, *, status: int = 200, **context: Any) -> HttpResponse:
        context = {
            "formats": FORMATS,
            "conflict_choices": [(value, CONFLICT_LABELS[value]) for value in CONFLICT_CHOICES],
            "on_conflict": "skip",
            **context,
        }
        return render(request, self.template_name, context, status=status)

    def post(self, request: HttpRequest) -> HttpResponse:
        on_conflict = request.POST.get("on_conflict", "skip")
        if on_conflict not in CONFLICT_CHOICES:
            on_conflict = "skip"
        valid_only = bool(request.POST.get("valid_only"))
        uploads = request.FILES.getlist("file")
        if uploads:
            chosen = request.POST.get("format", "auto")
            files = []
            for upload in uploads:
                fmt = chosen if chosen in FORMATS else format_for_filename(upload.name)
                if fmt is None:
                    return self.render(request, status=400, upload_error=(
                        f"{upload.name}: cannot tell the format from the name; choose it below."))  # fmt: skip
                files.append((upload.name, fmt, upload.read().decode("utf-8", "surrogateescape")))
            request.session[SESSION_KEY] = files
        files = request.session.get(SESSION_KEY)
        if not files:
            return self.render(request, status=400, upload_error="Choose a file to import.")
        try:
            rows = []
            for name, fmt, text in files:
                try:
                    rows += parse(text.encode("utf-8", "surrogateescape"), fmt)
                except TransferError as exc:
                    raise TransferError(f"{name}: {exc}") from exc
        except TransferError as exc:
            request.session.pop(SESSION_KEY, None)
            return self.render(request, status=400, upload_error=str(exc))
        fixes = _fixes(request)
        if request.POST.get("step") == "apply":
            try:
                result = alias_import(
                    rows=rows, by=request.user, on_conflict=on_conflict, valid_only=valid_only, fixes=fixes
                )
            except (AliasVersionConflict, ValidationError) as exc:
                messages.error(request, f"Nothing was imported: {exc} Check the preview and import again.")
            else:
                if result.applied:
                    request.session.pop(SESSION_KEY, None)
                    counts = result.counts
                    left_out = f", {counts['error']} refused rows left out" if counts["error"] else ""
                    messages.success(
                        request,
                        f"Imported: {counts['create']} created, {counts['update']} updated, "
                        f"{counts['unchanged']} unchanged{left_out}.",
                    )
                    return HttpResponseRedirect(safe_next(request) or reverse("aliases:list"))
                messages.error(
                    request,
                    f"Nothing was imported: {result.counts['error']} rows are refused. Accept the offered values, "
                    "fix the file and upload it again, or tick “Import the valid rows”.",
                )
            plan = plan_import(rows, on_conflict=on_conflict, fixes=fixes)
        else:
            plan = plan_import(rows, on_conflict=on_conflict, fixes=fixes)
        accepted = {f"{number}:{field}" for number, fields in fixes.items() for field in fields}
        return self.render(
            request,
            plan=plan,
            counts=plan_counts(plan),
            file_names=", ".join(name for name, _fmt, _text in files),
            on_conflict=on_conflict,
            valid_only=valid_only,
            accepted=accepted,
            next_url=safe_next(request),
        )


class AliasExportView(RoleRequiredMixin, View):
    """The list's current search and filters (q, source, repo, file) as a file."""

    permission_required = "aliases.view_alias"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        fmt = request.GET.get("format", "bodhi-yaml")
        if fmt not in FORMATS:
            fmt = "bodhi-yaml"
        params = {"search": request.GET.get("q", ""), **{k: request.GET.get(k) for k in ("source", "repo", "file")}}
        try:
            aliases = exported_aliases(params)
        except ValueError as exc:
            messages.error(request, f"Nothing exported: {exc.args[0]}: {exc.args[1]}")
            return HttpResponseRedirect(reverse("aliases:list"))
        return export_response(aliases, fmt)
