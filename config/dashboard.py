"""What the dashboard shows: counts, disk used by the model cache and free on its volume, recent failures.

Read-only, a handful of queries and one statvfs; the active downloads come from the status page's own code
(`modelfiles.views.active_context`), so both pages show and poll them the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest

from aliases.models import Alias
from config.formatting import human_size
from modelfiles.cache import hub_dir
from modelfiles.models import Download
from modelfiles.selectors import download_recent_failures, modelfile_storage

RECENT_FAILURES = 5
# Below either of these the dashboard warns that pulls may fail for lack of room.
LOW_FREE_BYTES = 10 * 1000**3
LOW_FREE_RATIO = 0.10


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
