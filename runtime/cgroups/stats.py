"""`docker stats` numbers from either cgroup version's files (one dict shape for both)."""
from __future__ import annotations

import os

from nsbox.runtime.cgroups import files

V1_UNLIMITED = 1 << 62  # v1 reports "unlimited" as 9223372036854771712 (page-rounded LLONG_MAX)


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _empty() -> dict:
    return {"cpu_usage_ns": 0, "cpu_throttled_periods": 0, "memory_usage": 0, "memory_limit": 0,
            "memory_cache": 0, "pids_current": 0, "pids_limit": None,
            "blkio_read_bytes": 0, "blkio_write_bytes": 0}


def v1_stats(dirs: dict[str, str]) -> dict:
    """dirs: controller -> this cgroup's directory in that hierarchy."""
    s = _empty()
    if "cpuacct" in dirs:
        s["cpu_usage_ns"] = files.read_int(os.path.join(dirs["cpuacct"], "cpuacct.usage")) or 0
    if "cpu" in dirs:
        s["cpu_throttled_periods"] = files.read_kv(os.path.join(dirs["cpu"], "cpu.stat")).get("nr_throttled", 0)
    if "memory" in dirs:
        m = dirs["memory"]
        usage = files.read_int(os.path.join(m, "memory.usage_in_bytes")) or 0
        st = files.read_kv(os.path.join(m, "memory.stat"))
        inactive = st.get("total_inactive_file", 0)
        # docker's CLI shows usage minus inactive page cache
        s["memory_usage"] = usage - inactive if inactive < usage else usage
        s["memory_cache"] = st.get("total_cache", 0)
        lim = files.read_int(os.path.join(m, "memory.limit_in_bytes"))
        s["memory_limit"] = host_memory() if lim is None or lim >= V1_UNLIMITED else lim
    if "pids" in dirs:
        p = dirs["pids"]
        s["pids_current"] = files.read_int(os.path.join(p, "pids.current")) or 0
        s["pids_limit"] = files.read_int(os.path.join(p, "pids.max"))
    if "blkio" in dirs:
        text = files.read_or(os.path.join(dirs["blkio"], "blkio.throttle.io_service_bytes"), "") or ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                s["blkio_read_bytes" if parts[1] == "Read" else "blkio_write_bytes"] += int(parts[2])
    return s


def v2_stats(d: str) -> dict:
    s = _empty()
    cpu = files.read_kv(os.path.join(d, "cpu.stat"))
    s["cpu_usage_ns"] = cpu.get("usage_usec", 0) * 1000
    s["cpu_throttled_periods"] = cpu.get("nr_throttled", 0)
    usage = files.read_int(os.path.join(d, "memory.current")) or 0
    st = files.read_kv(os.path.join(d, "memory.stat"))
    inactive = st.get("inactive_file", 0)
    s["memory_usage"] = usage - inactive if inactive < usage else usage
    s["memory_cache"] = st.get("file", 0)
    lim = files.read_int(os.path.join(d, "memory.max"))
    s["memory_limit"] = host_memory() if lim is None else lim
    s["pids_current"] = files.read_int(os.path.join(d, "pids.current")) or 0
    s["pids_limit"] = files.read_int(os.path.join(d, "pids.max"))
    text = files.read_or(os.path.join(d, "io.stat"), "") or ""
    for line in text.splitlines():
        for kv in line.split()[1:]:
            k, _, v = kv.partition("=")
            if k == "rbytes":
                s["blkio_read_bytes"] += int(v)
            elif k == "wbytes":
                s["blkio_write_bytes"] += int(v)
    return s
