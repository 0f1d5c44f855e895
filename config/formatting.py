"""How sizes, speeds, durations and counts read, everywhere: pages, messages, commands and the API's texts.

One place, so a number reads the same on every page and in every message.
"""

from __future__ import annotations

from django.template.defaultfilters import filesizeformat

UNSET = "—"
# What the pages call a MB (filesizeformat's 1024 × 1024 bytes): speeds typed in MB/s mean the same unit.
MB = 1024 * 1024


def human_bytes(count: float | None) -> str:
    """Sizes as every page shows them (Django's filesizeformat: 1 KB = 1024 bytes), so numbers agree."""
    return UNSET if count is None else str(filesizeformat(count)).replace("\xa0", " ")


human_size = human_bytes  # the name the pages' code uses


def human_speed(bytes_per_second: float | None) -> str:
    return UNSET if bytes_per_second is None else f"{human_bytes(bytes_per_second)}/s"


def human_duration(seconds: float | None) -> str:
    """`45 s`, `3 min 20 s`, `2 h 5 min`, `1 d 4 h`: two units at most, enough to plan by."""
    if seconds is None:
        return UNSET
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def human_count(value: int) -> str:
    """1,234,567,890 → 1.2 B, as model sizes are spoken of."""
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return str(value)
