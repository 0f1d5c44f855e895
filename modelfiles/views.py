"""Model-file and download pages. Thin: check the permission, validate the form, call a service, render."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags, quote_etag
from django.views import View

from aliases.validators import validate_repo, validate_snapshot
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next, safe_url, vary_on_htmx, wants_fragment
from modelfiles import hub
from modelfiles.filters import DownloadFilter, ModelFileFilter
from modelfiles.forms import PullForm, RepoFilesForm
from modelfiles.models import Download, ModelFile
from modelfiles.selectors import cache_scan_latest, download_active, download_list, modelfile_list
from modelfiles.services import (
    AlreadyLocal,
    NoUpdate,
    download_cancel,
    download_request,
    download_retry,
    modelfile_check_updates,
    modelfile_repull,
    modelfile_sync,
    modelfile_update,
    verification_request,
)
from modelfiles.tables import DownloadTable, ModelFileTable, human_duration, human_size, human_speed

# The event a poll of the active downloads sends when the set changed, so the history table reloads.
DOWNLOADS_CHANGED = "downloads-changed"


def _redirect_back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(safe_next(request) or reverse(default))


# --- model files ---------------------------------------------------------------------------------------------------


# The page lists this many of the latest scan's problems; `manage.py scan_cache` and the API give them all.
SCAN_SKIPPED_SHOWN = 50


class ModelFileListView(TableListView):
    permission_required = "modelfiles.view_modelfile"
    filterset_class = ModelFileFilter
    table_class = ModelFileTable
    template_name = "modelfiles/modelfile_list.html"
    partial_template_name = "modelfiles/partials/_modelfile_table.html"
    list_url_name = "modelfiles:list"

    def get_queryset(self):
        return modelfile_list()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        report = cache_scan_latest()
        if report is not None and report.skipped_total:
            context["scan_report"] = report
            context["scan_skipped_shown"] = report.skipped[:SCAN_SKIPPED_SHOWN]
            context["scan_skipped_more"] = report.skipped_total - len(context["scan_skipped_shown"])
        return context


class ModelFileRescanView(RoleRequiredMixin, View):
    """Bring the file list in step with the cache now (a local directory walk: quick enough to wait for)."""

    permission_required = "modelfiles.rescan_cache"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        counts = modelfile_sync(by=request.user)
        present = counts["present"]
        changed = f", {counts['updated']} changed" if counts["updated"] else ""
        messages.success(
            request,
            f"Rescanned the cache: {counts['created']} new{changed}, {counts['removed']} gone, "
            f"{present} file{'s' if present != 1 else ''}.",
        )
        skipped = len(counts["skipped"])
        if skipped:
            # The paths and reasons are listed on the model files page, from the scan's stored report.
            messages.warning(
                request,
                f"{skipped} cache entr{'y' if skipped == 1 else 'ies'} could not be listed and "
                f"{'was' if skipped == 1 else 'were'} skipped; see the list on the model files page.",
            )
        return _redirect_back(request, "modelfiles:list")


# --- pull ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoFileRow:
    path: str
    size: str
    pick_url: str


class PullView(RoleRequiredMixin, View):
    permission_required = "modelfiles.request_download"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "modelfiles/pull_form.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        # Prefilled from the query string: the "Pick" links of the file list land here without JavaScript.
        initial = {name: request.GET[name] for name in ("repo", "filename", "revision") if request.GET.get(name)}
        return render_pull_form(request, PullForm(initial=initial))

    def post(self, request: HttpRequest) -> HttpResponse:
        if request.POST.get("action") == "list":
            # "List GGUF files" without JavaScript: a GET of the list page, so the form's CSRF token is never
            # put in a URL.
            fields = ("repo", "revision", "filename")
            query = {name: value for name in fields if (value := request.POST.get(name, "").strip())}
            return HttpResponseRedirect(f"{reverse('modelfiles:pull-files')}?{urlencode(query)}", status=303)
        form = PullForm(data=request.POST)
        if not form.is_valid():
            return render_pull_form(request, form)
        values = form.cleaned_data
        try:
            download, created = download_request(
                repo=values["repo"], filename=values["filename"], revision=values["revision"], by=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return render_pull_form(request, form)
        except AlreadyLocal as exc:
            return render_pull_form(request, form, already_local=exc, already_local_values=values)
        name = f"{download.repo}/{download.filename}@{download.revision}"
        text = f"Queued {name}." if created else f"Already downloading {name}; here is its progress."
        if download.waiting_for_worker:
            # Queued all the same: the reconciler hands it to a worker once the task queue answers again.
            messages.warning(request, f"{text} {Download.WAITING_NOTE}")
        elif created:
            messages.success(request, text)
        else:
            messages.info(request, text)
        return HttpResponseRedirect(reverse("modelfiles:downloads"))


def render_pull_form(request: HttpRequest, form: PullForm, **extra: Any) -> HttpResponse:
    return render(request, PullView.template_name, {"form": form, **extra})


class RepoFilesView(RoleRequiredMixin, View):
    """The GGUF files of a repo with their sizes, from the Hub: a fragment for htmx, else the pull page with it."""

    permission_required = "modelfiles.request_download"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        query = RepoFilesForm(data=request.GET)
        query.is_valid()
        repo = query.cleaned_data.get("repo", "").strip()
        revision = query.cleaned_data.get("revision", "").strip() or "main"
        context: dict[str, Any] = {"repo": repo, "revision": revision, "files": None, "problem": ""}
        if query.errors:
            context["problem"] = " ".join(error for errors in query.errors.values() for error in errors)
        elif not repo:
            context["problem"] = "Enter a repository (owner/name) first, then list its files."
        else:
            context.update(self.list_files(repo, revision))
        if wants_fragment(request):
            return vary_on_htmx(render(request, "modelfiles/partials/_repo_files.html", context))
        initial = {"repo": repo, "revision": revision, "filename": request.GET.get("filename", "")}
        return vary_on_htmx(render_pull_form(request, PullForm(initial=initial), repo_files=context))

    @staticmethod
    def list_files(repo: str, revision: str) -> dict[str, Any]:
        try:
            validate_repo(repo)
            validate_snapshot(revision)
        except ValidationError as exc:
            return {"problem": " ".join(exc.messages)}
        try:
            infos = hub.list_gguf_files(repo, revision)
        except hub.HubError as exc:
            return {"problem": exc.message, "problem_code": exc.code}
        pull_url = reverse("modelfiles:pull")
        rows = [
            RepoFileRow(
                path=info.path,
                size=human_size(info.size),
                pick_url=f"{pull_url}?{urlencode({'repo': repo, 'filename': info.path, 'revision': revision})}",
            )
            for info in infos
        ]
        return {"files": rows}


# --- downloads -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveRow:
    """A download in the Active section, with the numbers already written the way people read them."""

    download: Download
    percent: float | None
    bytes_done: str
    bytes_total: str
    speed: str
    eta: str

    @classmethod
    def of(cls, download: Download) -> ActiveRow:
        return cls(
            download=download,
            percent=download.percent,
            bytes_done=human_size(download.bytes_done),
            bytes_total=human_size(download.bytes_total),
            speed=human_speed(download.speed),
            eta=human_duration(download.eta),
        )


def active_state(active: list[Download]) -> str:
    """A short token for "which downloads are active, in which state": a poll that sees it change reloads history."""
    text = ",".join(sorted(f"{download.pk}:{download.status}" for download in active))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def active_context(request: HttpRequest, *, next_url: str) -> dict[str, Any]:
    """Everything the Active section shows, so the poll can render it without a RequestContext (whose context
    processors would cost queries every second)."""
    active = download_active()
    return {
        "active_rows": [ActiveRow.of(download) for download in active],
        "active_state": active_state(active),
        "active_next_url": next_url,
        "can_cancel": request.user.has_perm("modelfiles.cancel_download"),
        "can_pull": request.user.has_perm("modelfiles.request_download"),
        "csrf_token": get_token(request),
    }


class DownloadListView(TableListView):
    """The status page: active downloads with live progress, and the history of every download."""

    permission_required = "modelfiles.view_download"
    filterset_class = DownloadFilter
    table_class = DownloadTable
    template_name = "modelfiles/download_list.html"
    partial_template_name = "modelfiles/partials/_download_history.html"
    list_url_name = "modelfiles:downloads"

    def get_queryset(self):
        return download_list()

    def get_table_kwargs(self) -> dict[str, Any]:
        return {"next_url": self.request.get_full_path()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if not wants_fragment(self.request):
            context.update(active_context(self.request, next_url=self.request.get_full_path()))
        return context


class ActiveDownloadsView(RoleRequiredMixin, View):
    """The Active section alone, which polls itself while something is active: one query for the rows."""

    permission_required = "modelfiles.view_download"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        if not request.htmx:
            return HttpResponseRedirect(reverse("modelfiles:downloads"))
        # Cancel buttons bring the visitor back to the page they are on, with its sort and filter.
        next_url = safe_url(request.htmx.current_url_abs_path, request) or reverse("modelfiles:downloads")
        context = active_context(request, next_url=next_url)
        etag = quote_etag(active_fingerprint(request, context))
        if etag in parse_etags(request.headers.get("If-None-Match", "")):
            # Nothing on screen would change: no template, no body. The browser revalidates its copy by itself
            # (no-cache below), so htmx swaps the same fragment back in.
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(render_to_string("modelfiles/partials/_active_downloads.html", context))
            seen = request.GET.get("state")
            if seen is not None and seen != context["active_state"]:
                # A download started, moved on or finished since the last poll: the history table is stale.
                response["HX-Trigger"] = DOWNLOADS_CHANGED
        response["ETag"] = etag
        patch_cache_control(response, private=True, no_cache=True)
        return vary_on_htmx(response)


def active_fingerprint(request: HttpRequest, context: dict[str, Any]) -> str:
    """Everything the Active section shows, hashed: equal fingerprints render equal fragments.

    Built from the figures as displayed (a speed that moves from 2.01 to 2.02 MB/s is not a change), who is
    looking (their buttons) and the CSRF secret behind the fragment's token (a cached copy must carry a valid one).
    """
    parts = [
        str(request.user.pk),
        request.META.get("CSRF_COOKIE", ""),
        context["active_next_url"],
        str(context["can_cancel"]),
        str(context["can_pull"]),
        context["active_state"],
    ]
    for row in context["active_rows"]:
        download = row.download
        requested_by = download.requested_by.get_username() if download.requested_by else ""
        percent = "" if row.percent is None else f"{row.percent:.1f}"
        parts += [str(download.pk), download.status, download.repo, download.filename, download.revision, percent,
                  row.bytes_done, row.bytes_total, row.speed, row.eta, str(download.attempts),
                  download.error_message, requested_by, str(download.waiting_for_worker)]  # fmt: skip
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


class DownloadActionView(RoleRequiredMixin, View):
    """A POST-only button on the status page; says what happened and goes back to the page it was pressed on."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: str) -> HttpResponse:
        download = get_object_or_404(Download, pk=pk)
        self.act(request, download)
        return _redirect_back(request, "modelfiles:downloads")

    def act(self, request: HttpRequest, download: Download) -> None:
        raise NotImplementedError


def _name(download: Download) -> str:
    return f"{download.repo}/{download.filename}@{download.revision}"


class DownloadCancelView(DownloadActionView):
    permission_required = "modelfiles.cancel_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        if download_cancel(download=download, by=request.user):
            messages.success(request, f"Cancelled {_name(download)}. Retry continues from the bytes already fetched.")
        else:
            download.refresh_from_db()
            messages.warning(request, f"{_name(download)} is {download.status}, not active: nothing to cancel.")


class DownloadRetryView(DownloadActionView):
    permission_required = "modelfiles.retry_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        current, requeued = download_retry(download=download, by=request.user)
        if requeued:
            messages.success(request, f"Queued {_name(download)} again; it resumes from the bytes already fetched.")
        elif current.pk != download.pk:
            messages.info(
                request, f"{_name(download)} is already being downloaded by a newer request; follow that one."
            )
        else:
            messages.warning(
                request, f"{_name(download)} is {current.status}: only failed or cancelled downloads can be retried."
            )


# --- verification and updates (issue 8, items 6 and 7) --------------------------------------------------------------


def _file_name(modelfile: ModelFile) -> str:
    return f"{modelfile.repo}/{modelfile.filename}@{modelfile.snapshot[:8]}"


class ModelFileVerifyView(RoleRequiredMixin, View):
    """Verify: re-hash the file on a worker; its page shows the progress."""

    permission_required = "modelfiles.verify_modelfile"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk)
        try:
            _verification, created = verification_request(modelfile=modelfile, by=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return _redirect_back(request, "modelfiles:list")
        if created:
            messages.success(request, f"Verifying {_file_name(modelfile)}.")
        else:
            messages.info(request, f"{_file_name(modelfile)} is being verified already; here is its progress.")
        return HttpResponseRedirect(reverse("modelfiles:verification", kwargs={"pk": modelfile.pk}))


def verification_context(modelfile: ModelFile) -> dict[str, Any]:
    verification = modelfile.verifications.order_by("-created_at", "-pk").first()
    return {
        "modelfile": modelfile,
        "verification": verification,
        "bytes_done": human_size(verification.bytes_done) if verification else "",
        "bytes_total": human_size(verification.bytes_total) if verification else "",
    }


class VerificationView(RoleRequiredMixin, View):
    """A file's latest verification; the progress fragment polls itself while it runs."""

    permission_required = "modelfiles.view_modelfile"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk)
        context = verification_context(modelfile)
        if wants_fragment(request):
            # Rendered without its trigger once finished, the fragment stops polling by itself.
            return vary_on_htmx(render(request, "modelfiles/partials/_verification.html", context))
        return vary_on_htmx(render(request, "modelfiles/verification.html", context))


class ModelFileRepullView(RoleRequiredMixin, View):
    """Re-pull a corrupt file: its damaged blob goes and the same commit is downloaded again."""

    permission_required = "modelfiles.request_download"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk)
        try:
            modelfile_repull(modelfile=modelfile, by=request.user)
        except ValidationError as exc:
            messages.warning(request, " ".join(exc.messages))
            return _redirect_back(request, "modelfiles:list")
        except AlreadyLocal:
            messages.info(request, f"{_file_name(modelfile)} is in the cache again; verify it.")
            return _redirect_back(request, "modelfiles:list")
        messages.success(request, f"Removed the damaged copy of {_file_name(modelfile)} and queued it again.")
        return HttpResponseRedirect(reverse("modelfiles:downloads"))


class ModelFileCheckUpdatesView(RoleRequiredMixin, View):
    """Check now: ask the Hub where the refs of the local files point (one HEAD per file pulled by a ref)."""

    permission_required = "modelfiles.request_download"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        results = modelfile_check_updates(by=request.user)
        updates = [result for result in results if result.update_available]
        errors = [result for result in results if result.error]
        if not results:
            messages.info(request, "No local file was pulled by a branch or tag: nothing to check.")
        elif updates:
            plural = "s" if len(updates) != 1 else ""
            messages.success(request, f"{len(updates)} update{plural} available (of {len(results)} checked).")
        else:
            messages.success(request, f"Checked {len(results)} file{'s' if len(results) != 1 else ''}: no updates.")
        if errors:
            messages.warning(request, f"{len(errors)} file{'s' if len(errors) != 1 else ''} could not be checked: "
                                      f"{errors[0].error}")  # fmt: skip
        return _redirect_back(request, "modelfiles:list")


class ModelFileUpdateView(RoleRequiredMixin, View):
    """Update: pull the newer commit the check found; the ref moves once it is in, verified."""

    permission_required = "modelfiles.request_download"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk)
        try:
            download, _created = modelfile_update(modelfile=modelfile, by=request.user)
        except NoUpdate as exc:
            messages.warning(request, str(exc))
            return _redirect_back(request, "modelfiles:list")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return _redirect_back(request, "modelfiles:list")
        if download is None:
            messages.success(request, f"{_file_name(modelfile)}: the newer commit was already here; the ref moved.")
            return _redirect_back(request, "modelfiles:list")
        messages.success(request, f"Pulling the update of {_file_name(modelfile)}; the ref moves once it is in.")
        return HttpResponseRedirect(reverse("modelfiles:downloads"))
