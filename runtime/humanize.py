"""docker's human units (go-units): sizes and durations, as its CLI prints them."""
from __future__ import annotations


def human_size(n: float, precision: int = 3) -> str:
    """HumanSizeWithPrecision: decimal units (kB, MB, ...); `images` uses 3 digits, `stats` 4."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def bytes_size(n: float) -> str:
    """BytesSize: binary units (KiB, MiB, ...), as in `stats` MEM USAGE / LIMIT."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


def human_duration(seconds: float) -> str:
    """HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"
