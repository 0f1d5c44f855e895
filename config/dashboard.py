"""What the dashboard shows: counts, disk used by the model cache and free on its volume, recent failures.

Read-only, a handful of queries and one statvfs; the active downloads come from the status page's own code
(`modelfiles.views.active_context`), so both pages show and poll them the same way.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.context_processors import PermWrapper
from django.db.models import Count, Q
from django.http import HttpRequest

from aliases.models import Alias
from config.formatting import human_size
from config.fragments import shared_fragment
from modelfiles.cache import hub_dir
from modelfiles.live import downloads_version
from modelfiles.models import Download
from modelfiles.selectors import download_recent_failures, modelfile_storage

RECENT_FAILURES = 5
# Below either of these the dashboard warns that pulls may fail for lack of room.
LOW_FREE_BYTES = 10 * 1000**3
LOW_FREE_RATIO = 0.10
SUMMARY_TEMPLATE = "dashboard/partials/_summary.html"
# A reload of the summary is rendered once per change of the downloads for everyone with the same buttons; what
# changes without a download (alias counts, the disk, "failed 3 minutes ago") is at most this old.
SUMMARY_SECONDS = 2
# What about the viewer the summary's markup depends on.
SUMMARY_PERMISSIONS = (
    "modelfiles.retry_download",
    "modelfiles.request_download",
    "aliases.add_alias",
    "modelfiles.delete_modelfile",
)


@dataclass(frozen=True)
class Storage:
    cache_dir: Path
    volume_dir: Path
    files: int
    used: int
    free: int | None
    total: int | None

    @property
    def used_human(self) -> str:
        return human_size(self.used)

    @property
    def free_human(self) -> str:
        return human_size(self.free)

    @property
    def total_human(self) -> str:
        return human_size(self.total)

    @property
    def other_used(self) -> int | None:
        """What the rest of the volume holds: neither free nor our model files."""
        if self.total is None or self.free is None:
            return None
        return max(0, self.total - self.free - self.used)

    def percent_of_total(self, value: int | None) -> float:
        if not self.total or value is None:
            return 0.0
        return round(100.0 * value / self.total, 1)

    @property
    def cache_percent(self) -> float:
        return self.percent_of_total(self.used)

    @property
    def other_percent(self) -> float:
        return self.percent_of_total(self.other_used)

    @property
    def low_on_space(self) -> bool:
        if self.free is None or not self.total:
            return False
        return self.free < LOW_FREE_BYTES or self.free / self.total < LOW_FREE_RATIO


def nearest_existing(path: Path) -> Path:
    """The cache folder may not exist before the first pull; its volume is that of its nearest existing parent."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def storage_summary() -> Storage:
    cache_dir = hub_dir()
    volume_dir = nearest_existing(cache_dir)
    files, used = modelfile_storage()
    try:
        usage = shutil.disk_usage(volume_dir)
    except OSError:
        free = total = None
    else:
        free, total = usage.free, usage.total
    return Storage(cache_dir=cache_dir, volume_dir=volume_dir, files=files, used=used, free=free, total=total)


def alias_counts() -> dict[str, int]:
    return Alias.objects.aggregate(
        total=Count("pk"),
        user=Count("pk", filter=Q(source=Alias.Source.USER)),
        model=Count("pk", filter=Q(source=Alias.Source.MODEL)),
    )


def dashboard_summary(request: HttpRequest) -> dict[str, Any]:
    """The part of the dashboard that changes when a download starts or ends (it reloads then)."""
    user = request.user
    return {
        "aliases": alias_counts(),
        "storage": storage_summary(),
        "failures": download_recent_failures(limit=RECENT_FAILURES),
        "failed_status": Download.Status.FAILED,
        "can_retry": user.has_perm("modelfiles.retry_download"),
        "can_pull": user.has_perm("modelfiles.request_download"),
        "can_add_alias": user.has_perm("aliases.add_alias"),
    }


def dashboard_summary_html(request: HttpRequest) -> str:
    """The summary alone, as the dashboard reloads it when the downloads change: a hundred viewers reload it in the
    same second, and it is rendered once for all who have the same buttons. Only for a cache shared by every process
    and worker (settings.CACHE_SHARED), where a download that ends renews the downloads' version for everyone; with
    a cache of each process's own, the web server would not hear of it and could serve the summary from before."""
    user = request.user

    def context() -> dict[str, Any]:
        return {**dashboard_summary(request), "perms": PermWrapper(user), "request": request}

    parts = [
        downloads_version(),
        str(int(time.time() // SUMMARY_SECONDS)),
        request.get_full_path(),
        *(str(user.has_perm(permission)) for permission in SUMMARY_PERMISSIONS),
    ]
    return shared_fragment(request, SUMMARY_TEMPLATE, context, parts=parts)
