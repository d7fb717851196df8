"""Driver-neutral helpers for reading a container's cgroup files (v1 or v2)."""
from __future__ import annotations

import os

from nsbox.runtime.cgroups import get_driver
from nsbox.runtime.state import ContainerRecord


def cgroup_of(paths, cid: str):
    """The container's Cgroup object (driver-neutral)."""
    cfg = ContainerRecord(paths, cid).config()
    return get_driver().open(cfg["Spec"]["linux"]["cgroupsPath"])


def knob(cg, v1: tuple[str, str], v2: str) -> str:
    """Read one cgroup file: (controller, file) on v1, file on v2."""
    if cg.version == 1:
        path = os.path.join(cg.ctrl_dirs[v1[0]], v1[1])
    else:
        path = os.path.join(cg.dirs()[0], v2)
    with open(path) as f:
        return f.read().strip()


def kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def memory_limit(cg) -> int | None:
    """None = unlimited."""
    v = knob(cg, ("memory", "memory.limit_in_bytes"), "memory.max")
    if v == "max" or int(v) >= 1 << 62:
        return None
    return int(v)


def pids_max(cg) -> str:
    return knob(cg, ("pids", "pids.max"), "pids.max")


def cpu_quota(cg) -> int | None:
    """Quota in microseconds per period; None = unlimited."""
    if cg.version == 1:
        v = int(knob(cg, ("cpu", "cpu.cfs_quota_us"), ""))
        return None if v < 0 else v
    q = knob(cg, ("", ""), "cpu.max").split()[0]
    return None if q == "max" else int(q)


def hog(mib: int) -> list[str]:
    """A busybox command that really allocates: the shell holds a `mib` MiB string from a command
    substitution (its peak is about twice that while it grows). No compiler needed in the VM."""
    return ["sh", "-c", f'x=$(head -c {mib}m /dev/zero | tr "\\0" a); echo "hog: ${{#x}} bytes"']


def cid_of(out: str) -> str:
    return out.strip().splitlines()[-1]
