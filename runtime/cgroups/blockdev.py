"""Which block devices actually honour proportional (weight) I/O control: only bfq does."""
from __future__ import annotations

import glob
import os


def scheduler(major: int, minor: int) -> str | None:
    """Active scheduler of a disk (partitions report their parent disk's queue)."""
    base = f"/sys/dev/block/{major}:{minor}"
    for q in (f"{base}/queue/scheduler", f"{base}/../queue/scheduler"):
        try:
            with open(q) as f:
                text = f.read()
        except OSError:
            continue
        if "[" in text:
            return text[text.index("[") + 1:text.index("]")]
        return text.strip() or None
    return None


def weight_warning(major: int | None = None, minor: int | None = None) -> str | None:
    """A warning if a blkio weight will do nothing (device, or every disk, not on bfq)."""
    if major is not None:
        s = scheduler(major, minor or 0)
        if s != "bfq":
            return (f"blkio weight for device {major}:{minor}: its I/O scheduler is {s or 'unknown'}, "
                    f"not bfq; the weight has no effect")
        return None
    seen = []
    for q in sorted(glob.glob("/sys/block/*/queue/scheduler")):
        dev = q.split("/")[3]
        if dev.startswith(("loop", "ram", "zram")):
            continue
        s = scheduler(*map(int, open(f"/sys/block/{dev}/dev").read().split(":")))
        if s == "bfq":
            return None
        seen.append(f"{dev}: {s}")
    return ("blkio weight: no disk uses the bfq I/O scheduler (" + ", ".join(seen or ["no disks"])
            + "); the weight has no effect")


def is_block_device(path: str) -> bool:
    import stat
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False
