"""Sizes, rates and durations as an operator reads them: one place for every front-end and step."""

from __future__ import annotations

import math


def human_size(size: float) -> str:
    """Binary units: 404_000_000_000 -> '376.3 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns at TiB


def decimal_size(size: float) -> str:
    """Decimal units, as the Hub and disk vendors print them: '404.4 GB', '812.0 MB', '4.1 kB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def rate(bytes_per_s: float) -> str:
    return f"{decimal_size(bytes_per_s)}/s"


def short_rate(bytes_per_s: float) -> str:
    """At most 8 characters, for narrow table columns: '209 MB/s', '41 MB/s', '3.3 GB/s'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(bytes_per_s) >= scale:
            value = bytes_per_s / scale
            return f"{value:.0f} {unit}/s" if value >= 10 else f"{value:.1f} {unit}/s"
    return f"{bytes_per_s:.0f} B/s"


def short_duration(seconds: float) -> str:
    """As `duration`, with whole minutes from ten minutes on: '34m', '1h07m', '4m05s'."""
    if seconds is not None and math.isfinite(seconds) and 600 <= seconds < 3600:
        return f"{int(seconds // 60)}m"
    return duration(seconds)


def duration(seconds: float) -> str:
    """'3h07m', '4m05s', '12s'; '?' when unknown or infinite."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
