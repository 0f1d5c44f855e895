"""Model-file and download pages. Thin: check the permission, validate the form, call a service, render."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags, quote_etag
from django.views import View

from aliases.models import Alias
from aliases.tables import alias_url
from aliases.validators import validate_repo, validate_snapshot
from config.formatting import human_count, human_duration, human_size, human_speed
from config.fragments import shared_fragment
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next, safe_url, vary_on_htmx, wants_fragment
from modelfiles import cache, cleanup, hub
from modelfiles.filters import DownloadFilter, ModelFileFilter
from modelfiles.forms import (
    CleanupForm,
    ModelFileDeleteForm,
    PullForm,
    RepoFilesForm,
    SpeedLimitForm,
    speed_bytes,
    speed_mb,
)
from modelfiles.gguf_header import split_name
from modelfiles.live import download_active_shared
from modelfiles.models import Download, ModelFile
from modelfiles.selectors import (
    cache_scan_latest,
    download_active,
    download_active_for,
    download_history,
    download_limits_now,
    modelfile_alias_names,
    modelfile_list,
    modelfile_split_parts,
    modelfile_state_reason,
    repo_files_local,
)
from modelfiles.services import (
    HUB_UNCHECKED,
    AlreadyLocal,
    ModelFileBusy,
    NoUpdate,
    PullRefused,
    cache_cleanup,
    cache_cleanup_plan,
    download_cancel,
    download_kept_bytes,
    download_limits_set,
    download_move,
    download_pause,
    download_request,
    download_resume,
    download_retry,
    download_speed_set,
    modelfile_check_updates,
    modelfile_delete,
    modelfile_repull,
    modelfile_revisions,
    modelfile_sync,
    modelfile_sync_elsewhere,
    modelfile_update,
    modelfile_users,
    pull_set_note,
    verification_request,
)
from modelfiles.tables import DownloadState, DownloadTable, ModelFileTable, download_state

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
        others = modelfile_sync_elsewhere()  # files per host: the other hosts' workers scan their own caches
        present = counts["present"]
        changed = f", {counts['updated']} changed" if counts["updated"] else ""
        elsewhere = f" The other hosts ({others}) rescan theirs in the background." if others else ""
        messages.success(
            request,
            f"Rescanned the cache: {counts['created']} new{changed}, {counts['removed']} gone, "
            f"{present} file{'s' if present != 1 else ''}.{elsewhere}",
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
    path: str  # a split model's part 1: a pull of it brings the whole set
    size: str  # a split model's total
    pick_url: str
    local: bool = False  # in the cache for this revision already (every part of a split model)
    download: Download | None = None  # the active download of it, if any
    parts: int = 1  # the parts of a split model
    parts_on_hub: int = 1  # how many of them the Hub has (fewer: the set cannot be pulled)


@dataclass(frozen=True)
class _RepoEntry:
    path: str
    size: int | None
    names: list[str]  # every file it stands for
    parts: int = 1


def _repo_entries(infos: list[hub.RepoFileInfo]) -> list[_RepoEntry]:
    """The repo's files as people pick them: a split model is one entry (named by its part 1, sized by all its
    parts), in the place of its first part; other files as they are."""
    entries: list[_RepoEntry] = []
    sets: dict[tuple[str, int], list[hub.RepoFileInfo]] = {}
    for info in infos:
        name = split_name(info.path)
        if name is None:
            entries.append(_RepoEntry(info.path, info.size, [info.path]))
            continue
        key = (name.prefix, name.count)
        if key not in sets:
            sets[key] = []
            entries.append(_RepoEntry(name.part(1), None, [], parts=name.count))  # filled in below
        sets[key].append(info)
    result = []
    for entry in entries:
        if entry.parts > 1:
            found = sets[(split_name(entry.path).prefix, entry.parts)]
            sizes = [info.size for info in found]
            size = None if None in sizes else sum(sizes)
            entry = _RepoEntry(entry.path, size, [info.path for info in found], parts=entry.parts)
        result.append(entry)
    return result


class PullView(RoleRequiredMixin, View):
    permission_required = "modelfiles.request_download"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "modelfiles/pull_form.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        # Prefilled from the query string: the "Pick" links of the file list land here without JavaScript.
        initial = {
            name: request.GET[name] for name in ("repo", "filename", "revision", "host") if request.GET.get(name)
        }
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
                repo=values["repo"],
                filename=values["filename"],
                revision=values["revision"],
                by=request.user,
                host=values.get("host") or "",
                priority=values["priority"],
                max_speed=speed_bytes(values.get("max_speed")),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return render_pull_form(request, form)
        except AlreadyLocal as exc:
            return render_pull_form(request, form, already_local=exc, already_local_values=values)
        note = pull_set_note(parts=download.parts, size=download.bytes_total)
        name = f"{download.repo}/{download.filename}@{download.revision}{note}"
        text = f"Queued {name}." if created else f"Already downloading {name}; here is its progress."
        if download.waiting_for_worker:
            # Queued all the same: the reconciler hands it to a worker once the task queue answers again.
            text = f"{text} {Download.WAITING_NOTE}"
        if created and download.error_code == HUB_UNCHECKED:
            # Queued without the pre-flight: say so, the Hub may still refuse it when the worker asks.
            text = f"{text} {download.error_message}"
        if download.waiting_for_worker or (created and download.error_code == HUB_UNCHECKED):
            messages.warning(request, text)
        elif created:
            messages.success(request, text)
        else:
            messages.info(request, text)
        # "Pull this file" on an alias's page comes back to that page, which shows the download's progress.
        return HttpResponseRedirect(safe_next(request) or reverse("modelfiles:downloads"))


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
            infos = hub.list_gguf_files(repo, revision, timeout=settings.HUB_PAGE_TIMEOUT_SECONDS)
        except hub.HubError as exc:
            return {"problem": exc.message, "problem_code": exc.code}
        pull_url = reverse("modelfiles:pull")
        entries = _repo_entries(infos)
        local = repo_files_local(
            repo=repo, revision=revision, paths=[name for entry in entries for name in entry.names]
        )
        active = download_active_for(repo=repo, revision=revision)
        rows = [
            RepoFileRow(
                path=entry.path,
                size=human_size(entry.size),
                pick_url=f"{pull_url}?{urlencode({'repo': repo, 'filename': entry.path, 'revision': revision})}",
                local=len(entry.names) == entry.parts and all(name in local for name in entry.names),
                download=active.get(entry.path),
                parts=entry.parts,
                parts_on_hub=len(entry.names),
            )
            for entry in entries
        ]
        return {"files": rows}


# --- downloads -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveRow:
    """A download in the Active section, with the numbers already written the way people read them: only those
    that are known (no "0 bytes of —", no ETA while nothing moves)."""

    download: Download
    state: DownloadState
    percent: float | None
    bytes: str  # "12 MB of 50 MB", "50 MB", or "" while neither is known
    speed: str  # "" unless bytes are moving
    eta: str
    can_pause: bool
    can_resume: bool
    can_move: bool
    priority: str  # "high" or "low"; "" for normal, which goes without saying
    speed_limit: str  # "limit 5 MB/s" when it has a limit of its own

    @classmethod
    def of(cls, download: Download) -> ActiveRow:
        state = download_state(download)
        if download.bytes_total is not None and download.bytes_done:
            bytes_text = f"{human_size(download.bytes_done)} of {human_size(download.bytes_total)}"
        elif download.bytes_total is not None:
            bytes_text = human_size(download.bytes_total)
        else:
            bytes_text = human_size(download.bytes_done) if download.bytes_done else ""
        moving = state.key == Download.Status.DOWNLOADING and download.speed is not None
        return cls(
            download=download,
            state=state,
            percent=download.percent,
            bytes=bytes_text,
            speed=human_speed(download.speed) if moving else "",
            eta=f"ETA {human_duration(download.eta)}" if moving and download.eta is not None else "",
            can_pause=download.status in Download.PAUSABLE,
            can_resume=download.status == Download.Status.PAUSED,
            can_move=download.status in Download.WAITING,
            priority=""
            if download.priority == Download.Priority.NORMAL
            else Download.Priority(download.priority).label,
            speed_limit=f"limit {human_speed(download.max_speed)}" if download.max_speed else "",
        )


def active_state(active: list[Download]) -> str:
    """A short token for "which downloads are active, in which state": a poll that sees it change reloads history."""
    text = ",".join(sorted(f"{download.pk}:{download.status}" for download in active))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def active_context(request: HttpRequest, *, next_url: str, active: list[Download] | None = None) -> dict[str, Any]:
    """Everything the Active section shows, so the poll can render it without a RequestContext (whose context
    processors would cost queries every second); `active`: the rows, when the caller has them."""
    active = download_active() if active is None else active
    return {
        "active_rows": [ActiveRow.of(download) for download in active],
        "active_state": active_state(active),
        "active_next_url": next_url,
        "can_cancel": request.user.has_perm("modelfiles.cancel_download"),
        "can_pause": request.user.has_perm("modelfiles.pause_download"),
        "can_pull": request.user.has_perm("modelfiles.request_download"),
        "csrf_token": get_token(request),
    }


class DownloadListView(TableListView):
    """The status page: active downloads with live progress, then the history of the finished ones."""

    permission_required = "modelfiles.view_download"
    filterset_class = DownloadFilter
    table_class = DownloadTable
    template_name = "modelfiles/download_list.html"
    partial_template_name = "modelfiles/partials/_download_history.html"
    list_url_name = "modelfiles:downloads"

    def get_queryset(self):
        return download_history()

    def get_table_kwargs(self) -> dict[str, Any]:
        return {"next_url": self.request.get_full_path()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if not wants_fragment(self.request):
            context.update(active_context(self.request, next_url=self.request.get_full_path()))
            context.update(limits_context(self.request))
        return context


def limits_context(request: HttpRequest, form: SpeedLimitForm | None = None) -> dict[str, Any]:
    """The limits panel above the Active section (not part of the poll: the limits change when someone sets them,
    and the page they set them on reloads)."""
    limits = download_limits_now()
    return {
        "limits": limits,
        "limits_speed": human_speed(limits.max_speed) if limits.max_speed else "",
        "limits_form": form or SpeedLimitForm(initial={"max_speed": speed_mb(limits.max_speed)}),
        "can_limit": request.user.has_perm("modelfiles.pause_download"),
    }


class ActiveDownloadsView(RoleRequiredMixin, View):
    """The Active section alone, which polls itself while something is active: no query for the rows."""

    permission_required = "modelfiles.view_download"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        if not request.htmx:
            return HttpResponseRedirect(reverse("modelfiles:downloads"))
        # Cancel buttons bring the visitor back to the page they are on, with its sort and filter.
        next_url = safe_url(request.htmx.current_url_abs_path, request) or reverse("modelfiles:downloads")
        # The rows from the cache, read again only when they change (modelfiles/live.py): a poll costs no query.
        context = active_context(request, next_url=next_url, active=download_active_shared())
        shown = active_content(context)
        etag = quote_etag(active_fingerprint(request, shown))
        if etag in parse_etags(request.headers.get("If-None-Match", "")):
            # Nothing on screen would change: no template, no body. The browser revalidates its copy by itself
            # (no-cache below), so htmx swaps the same fragment back in.
            response = HttpResponseNotModified()
        else:
            # Rendered once per content for everyone who sees the same (config/fragments.py).
            response = HttpResponse(shared_fragment(request, ACTIVE_TEMPLATE, context, parts=shown))
            seen = request.GET.get("state")
            if seen is not None and seen != context["active_state"]:
                # A download started, moved on or finished since the last poll: the history table is stale.
                response["HX-Trigger"] = DOWNLOADS_CHANGED
        response["ETag"] = etag
        patch_cache_control(response, private=True, no_cache=True)
        return vary_on_htmx(response)


ACTIVE_TEMPLATE = "modelfiles/partials/_active_downloads.html"


def active_content(context: dict[str, Any]) -> list[str]:
    """Everything the Active section's markup depends on but the CSRF token: the figures as displayed (a speed
    that moves from 2.01 to 2.02 MB/s is not a change) and the viewer's buttons and page. Equal lists render equal
    fragments, so one rendering serves everyone who sees the same."""
    parts = [
        context["active_next_url"],
        str(context["can_cancel"]),
        str(context["can_pause"]),
        str(context["can_pull"]),
        context["active_state"],
    ]
    for row in context["active_rows"]:
        download = row.download
        requested_by = download.requested_by.get_username() if download.requested_by else ""
        percent = "" if row.percent is None else f"{row.percent:.1f}"
        parts += [str(download.pk), download.status, row.state.key, row.state.label, row.state.detail, download.repo,
                  download.filename, download.revision, download.host, percent, row.bytes, row.speed, row.eta,
                  download.error_message, requested_by,
                  str(download.waiting_for_worker), str(download.parts), str(download.part),
                  row.priority, row.speed_limit, str(row.can_move)]  # fmt: skip
    return parts


def active_fingerprint(request: HttpRequest, shown: list[str]) -> str:
    """The ETag of a viewer's Active section: its content, who is looking and the CSRF secret behind the
    fragment's token (a copy the browser keeps must carry a valid one)."""
    parts = [str(request.user.pk), request.META.get("CSRF_COOKIE", ""), *shown]
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


# A cancel that would throw away more than this asks first: a few MB cost nothing to fetch again.
CANCEL_CONFIRM_BYTES = 8 * 1024 * 1024


class DownloadCancelView(RoleRequiredMixin, View):
    """Cancel: the transfer stops and its partial file is deleted. When more than a few MB would be lost, the
    button leads to a confirmation page first (GET shows it too), which offers Pause instead."""

    permission_required = "modelfiles.cancel_download"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "modelfiles/download_cancel.html"

    def get(self, request: HttpRequest, pk: str) -> HttpResponse:
        return self.confirmation(request, get_object_or_404(Download, pk=pk))

    def post(self, request: HttpRequest, pk: str) -> HttpResponse:
        download = get_object_or_404(Download, pk=pk)
        if download.is_active and download.bytes_done > CANCEL_CONFIRM_BYTES and not request.POST.get("confirm"):
            return self.confirmation(request, download)
        if download_cancel(download=download, by=request.user):
            lost = f"; the {human_size(download.bytes_done)} fetched were deleted" if download.bytes_done else ""
            messages.success(request, f"Cancelled {_name(download)}{lost}.")
        else:
            download.refresh_from_db()
            messages.warning(request, f"{_name(download)} is {download.status}, not active: nothing to cancel.")
        return _redirect_back(request, "modelfiles:downloads")

    def confirmation(self, request: HttpRequest, download: Download) -> HttpResponse:
        context = {
            "download": download,
            "name": _name(download),
            "fetched": human_size(download.bytes_done),
            "can_pause": download.status in Download.PAUSABLE and request.user.has_perm("modelfiles.pause_download"),
            "next_url": safe_next(request) or reverse("modelfiles:downloads"),
        }
        return render(request, self.template_name, context)


class DownloadPauseView(DownloadActionView):
    permission_required = "modelfiles.pause_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        if download_pause(download=download, by=request.user):
            kept = f"; the {human_size(download.bytes_done)} fetched are kept" if download.bytes_done else ""
            messages.success(request, f"Paused {_name(download)}{kept}. Resume continues where it stopped.")
        else:
            download.refresh_from_db()
            messages.warning(
                request, f"{_name(download)} is {download.status}: only queued or downloading downloads can be paused."
            )


class DownloadResumeView(DownloadActionView):
    permission_required = "modelfiles.pause_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        if download_resume(download=download, by=request.user):
            kept = f" from the {human_size(download.bytes_done)} already fetched" if download.bytes_done else ""
            messages.success(request, f"Resumed {_name(download)}: queued in its place, it continues{kept}.")
        else:
            download.refresh_from_db()
            messages.warning(request, f"{_name(download)} is {download.status}, not paused: nothing to resume.")


MOVE_WORDS = {"top": "to the top of the queue", "up": "up the queue", "down": "down the queue"}


class DownloadMoveView(DownloadActionView):
    """Top, Up and Down on a queued or paused download: one form, the pressed button's `to`."""

    permission_required = "modelfiles.pause_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        to = request.POST.get("to", "")
        if to not in MOVE_WORDS:
            messages.error(request, "Choose where to move it: top, up or down.")
            return
        if download_move(download=download, to=to, by=request.user):
            download.refresh_from_db()
            priority = Download.Priority(download.priority).label
            messages.success(request, f"Moved {_name(download)} {MOVE_WORDS[to]} (priority {priority}).")
        else:
            download.refresh_from_db()
            messages.warning(
                request, f"{_name(download)} is {download.status}: only queued or paused downloads can be moved."
            )


class DownloadSpeedView(RoleRequiredMixin, View):
    """One download's own bandwidth limit: a small page of its own (GET) and its POST, so the form is never in
    the Active section, which redraws itself every second while someone types."""

    permission_required = "modelfiles.pause_download"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "modelfiles/download_speed.html"

    def get(self, request: HttpRequest, pk: str) -> HttpResponse:
        download = get_object_or_404(Download, pk=pk)
        return self.page(request, download, SpeedLimitForm(initial={"max_speed": speed_mb(download.max_speed)}))

    def post(self, request: HttpRequest, pk: str) -> HttpResponse:
        download = get_object_or_404(Download, pk=pk)
        form = SpeedLimitForm(data=request.POST)
        if not form.is_valid():
            return self.page(request, download, form, status=400)
        max_speed = speed_bytes(form.cleaned_data["max_speed"])
        try:
            changed = download_speed_set(download=download, max_speed=max_speed, by=request.user)
        except ValidationError as exc:
            form.add_error("max_speed", exc.message_dict.get("max_speed", exc.messages))
            return self.page(request, download, form, status=400)
        if changed:
            limit = f"at most {human_speed(max_speed)}" if max_speed else "no limit of its own"
            messages.success(request, f"{_name(download)}: {limit}.")
        else:
            download.refresh_from_db()
            messages.warning(request, f"{_name(download)} is {download.status}: it has no speed to limit.")
        return _redirect_back(request, "modelfiles:downloads")

    def page(self, request: HttpRequest, download: Download, form: SpeedLimitForm, *, status: int = 200):
        context = {
            "download": download,
            "name": _name(download),
            "form": form,
            "global_speed": limits_context(request)["limits_speed"],
            "next_url": safe_next(request) or reverse("modelfiles:downloads"),
        }
        return render(request, self.template_name, context, status=status)


class DownloadLimitsView(RoleRequiredMixin, View):
    """The global bandwidth limit, set from the limits panel of the downloads page."""

    permission_required = "modelfiles.pause_download"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SpeedLimitForm(data=request.POST)
        if not form.is_valid():
            errors = " ".join(error for errors in form.errors.values() for error in errors)
            messages.error(request, f"The global speed limit was not changed: {errors}")
            return _redirect_back(request, "modelfiles:downloads")
        max_speed = speed_bytes(form.cleaned_data["max_speed"])
        try:
            download_limits_set(max_speed=max_speed, by=request.user)
        except ValidationError as exc:
            messages.error(request, f"The global speed limit was not changed: {' '.join(exc.messages)}")
            return _redirect_back(request, "modelfiles:downloads")
        if max_speed:
            messages.success(request, f"Downloads now share at most {human_speed(max_speed)}.")
        else:
            messages.success(request, "Downloads now have no global speed limit.")
        return _redirect_back(request, "modelfiles:downloads")


class DownloadRetryView(DownloadActionView):
    permission_required = "modelfiles.retry_download"

    def act(self, request: HttpRequest, download: Download) -> None:
        # Read before the retry: what is on disk now is what the next try continues from.
        kept = download_kept_bytes(download=download)
        try:
            current, requeued = download_retry(download=download, by=request.user)
        except PullRefused as exc:
            messages.error(request, f"{_name(download)} was not queued again: {exc.reason}")
            return
        if requeued:
            resume = f"; it resumes from the {human_size(kept)} already fetched" if kept else ""
            messages.success(request, f"Queued {_name(download)} again{resume}.")
        elif current.pk != download.pk:
            messages.info(
                request, f"{_name(download)} is already being downloaded by a newer request; follow that one."
            )
        else:
            messages.warning(
                request, f"{_name(download)} is {current.status}: only failed or cancelled downloads can be retried."
            )


# --- one model file --------------------------------------------------------------------------------------------------


class ModelFileDetailView(RoleRequiredMixin, View):
    """One file: where it is, what its GGUF header says, its split set and the aliases that load it."""

    permission_required = "modelfiles.view_modelfile"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile.objects.select_related("location"), pk=pk)
        parts = modelfile_split_parts(modelfile)
        expected = []
        if modelfile.split_count:
            by_name = {part.filename: part for part in parts}
            name = split_name(modelfile.filename)
            expected = [
                (number, name.part(number), by_name.get(name.part(number))) for number in range(1, name.count + 1)
            ]
        context = {
            "modelfile": modelfile,
            "reason": modelfile_state_reason(modelfile),
            "parts": expected,
            "aliases": [
                (name, alias_url("aliases:detail", name))
                for name in modelfile_alias_names([modelfile]).get(modelfile.pk, [])
            ],
            "size": human_size(modelfile.size),
            "total_size": human_size(modelfile.split_total_size) if modelfile.split_total_size else "",
            "parameters": human_count(modelfile.gguf_parameters) if modelfile.gguf_parameters else "",
            "set_parameters": _set_parameters(modelfile, parts),
            "next_url": safe_next(request),
        }
        return render(request, "modelfiles/modelfile_detail.html", context)


def _set_parameters(modelfile: ModelFile, parts: list[ModelFile]) -> str:
    """The weights of the whole split model (each part's header counts its own), once every part is here."""
    if not modelfile.split_count or len(parts) != modelfile.split_count:
        return ""
    if any(part.gguf_parameters is None for part in parts):
        return ""
    return human_count(sum(part.gguf_parameters for part in parts))


# --- delete a file -------------------------------------------------------------------------------------------------


class ModelFileDeleteView(RoleRequiredMixin, View):
    """The confirmation page of a delete: what goes, how much space it frees, the aliases that stop working."""

    permission_required = "modelfiles.delete_modelfile"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "modelfiles/modelfile_delete.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk, present=True)
        return self.render_page(request, modelfile, all_revisions=request.GET.get("all_revisions") == "1")

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        modelfile = get_object_or_404(ModelFile, pk=pk, present=True)
        form = ModelFileDeleteForm(data=request.POST)
        all_revisions = form.is_valid() and form.cleaned_data["all_revisions"]
        if not form.is_valid():
            return self.render_page(request, modelfile, all_revisions=all_revisions, form=form, status=400)
        seen = set(request.POST.getlist("seen_alias"))
        files = modelfile_revisions(modelfile=modelfile, all_revisions=all_revisions)
        users = modelfile_users(files=files)[Alias.Source.USER]
        if not set(users) <= seen:
            # An alias started loading the file since the page was shown: its owner has not been warned about.
            return self.render_page(request, modelfile, all_revisions=all_revisions, new_users=True, status=409)
        try:
            removal = modelfile_delete(modelfile=modelfile, all_revisions=all_revisions, force=True, by=request.user)
        except ModelFileBusy as exc:
            return self.render_page(request, modelfile, all_revisions=all_revisions, busy=exc, status=409)
        # The repo is named once, after "from".
        what = (
            f"every revision of {modelfile.filename}"
            if all_revisions
            else f"{modelfile.filename}@{modelfile.snapshot[:8]}"
        )
        messages.success(request, f"Deleted {what} from {modelfile.repo}; {human_size(removal.freed)} freed.")
        return HttpResponseRedirect(safe_next(request) or reverse("modelfiles:list"))

    def render_page(
        self, request: HttpRequest, modelfile: ModelFile, *, all_revisions: bool, status: int = 200, **extra: Any
    ) -> HttpResponse:
        files = modelfile_revisions(modelfile=modelfile, all_revisions=all_revisions)
        users = modelfile_users(files=files)
        revisions = ModelFile.objects.filter(repo=modelfile.repo, filename=modelfile.filename, present=True).count()
        context = {
            "modelfile": modelfile,
            "files": files,
            "all_revisions": all_revisions,
            "revision_count": revisions,
            "total_size": human_size(sum(file.size for file in files)),
            "user_aliases": [(name, alias_url("aliases:detail", name)) for name in users[Alias.Source.USER]],
            "model_aliases": users[Alias.Source.MODEL],
            "next_url": safe_next(request),
            **extra,
        }
        return render(request, self.template_name, context, status=status)


# --- storage and cleanup -------------------------------------------------------------------------------------------


# How many candidates of each kind the pages list; the totals always count them all (`manage.py cleanup --dry-run`
# lists every one).
CANDIDATES_SHOWN = 200


@dataclass(frozen=True)
class CandidateGroup:
    kind: str
    label: str
    items: list[cleanup.Candidate]
    total: int
    size: str
    shown: list[cleanup.Candidate]

    @property
    def more(self) -> int:
        return self.total - len(self.shown)


def candidate_groups(plan: list[cleanup.Candidate]) -> list[CandidateGroup]:
    groups = []
    for kind, label in cleanup.KINDS.items():
        items = [item for item in plan if item.kind == kind]
        groups.append(
            CandidateGroup(
                kind, label, items, len(items), human_size(sum(i.size for i in items)), items[:CANDIDATES_SHOWN]
            )
        )
    return groups


class StorageView(RoleRequiredMixin, View):
    """Used space per repo and in total, free space, and what a cleanup could remove (a dry run of every kind)."""

    permission_required = "modelfiles.delete_modelfile"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        usage = cleanup.usage()
        try:
            free = human_size(cache.free_bytes(cache.hub_dir()))
        except OSError:
            free = None
        plan = cache_cleanup_plan(kinds=cleanup.KINDS)
        context = {
            "repos": [(row, human_size(row.size), human_size(row.partial_size)) for row in usage],
            "used": human_size(sum(row.size for row in usage)),
            "free": free,
            "cache_dir": cache.hub_dir(),
            "groups": candidate_groups(plan),
            "form": CleanupForm(initial={"kind": list(cleanup.DEFAULT_KINDS)}),
            "shown_limit": CANDIDATES_SHOWN,
        }
        return render(request, "modelfiles/storage.html", context)


class CleanupView(RoleRequiredMixin, View):
    """GET: the dry run of the kinds chosen (what would go, how much space). POST with `confirm`: remove it."""

    permission_required = "modelfiles.delete_modelfile"
    http_method_names = ["get", "post", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        form = CleanupForm(data=request.GET or {"kind": list(cleanup.DEFAULT_KINDS)})
        return self.preview(request, form, status=200 if form.is_valid() else 400)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = CleanupForm(data=request.POST)
        if not form.is_valid() or not form.cleaned_data["confirm"]:
            if form.is_valid():
                form.add_error("confirm", "Press the cleanup button to confirm.")
            return self.preview(request, form, status=400)
        removal = cache_cleanup(kinds=form.cleaned_data["kind"], by=request.user)
        count = len(removal.removed)
        messages.success(
            request, f"Cleanup removed {count} entr{'y' if count == 1 else 'ies'}; {human_size(removal.freed)} freed."
        )
        if removal.kept:
            messages.warning(
                request,
                f"{len(removal.kept)} entr{'y was' if len(removal.kept) == 1 else 'ies were'} left: a download "
                "took them, or they were gone, since the preview.",
            )
        return HttpResponseRedirect(reverse("modelfiles:storage"))

    def preview(self, request: HttpRequest, form: CleanupForm, *, status: int) -> HttpResponse:
        # The form was validated by the caller; its valid fields are in cleaned_data even when another is not.
        kinds = form.cleaned_data.get("kind") or []
        plan = cache_cleanup_plan(kinds=kinds) if kinds else []
        context = {
            "form": form,
            "kinds": kinds,
            "groups": [group for group in candidate_groups(plan) if group.kind in kinds],
            "count": len(plan),
            "freed": human_size(sum(item.size for item in plan)),
            "shown_limit": CANDIDATES_SHOWN,
        }
        return render(request, "modelfiles/cleanup_preview.html", context, status=status)


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
        return _redirect_back(request, "modelfiles:downloads")


class ModelFileCheckUpdatesView(RoleRequiredMixin, View):
    """Check now: ask the Hub where the refs of the local files point (one HEAD per file pulled by a ref)."""

    permission_required = "modelfiles.request_download"
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        results = modelfile_check_updates(by=request.user, timeout=settings.HUB_PAGE_TIMEOUT_SECONDS)
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
