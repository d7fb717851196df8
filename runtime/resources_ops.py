"""`nsbox update` and `nsbox stats`: the logic behind cli/resources.py (which only parses and prints).

update: the flags given are merged into the container's stored raw flags
(`HostConfig.Resources`), re-validated as a whole with docker's combination rules
(units.resources_from_flags), persisted (`Spec.linux.resources` too, so the next start and
policy restarts use them) and, if the container has a live cgroup, written to it. All under the
container's lock.

stats: one `StatsSample` per container (cgroup counters + /proc/<pid1>/net/dev), and
`StatsRow`s computed from two samples the way docker's CLI does.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from nsbox.runtime import state as S
from nsbox.runtime import units
from nsbox.runtime.cgroups import CgroupError, Resources, get_driver
from nsbox.runtime.errors import InvalidArgument
from nsbox.runtime.state import ContainerRecord

# docker update's resource flags (CLI option name -> units parser argument name)
UPDATE_FLAGS = ("memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
                "cpu_quota", "cpuset_cpus", "cpuset_mems", "blkio_weight", "pids_limit")
_CPU_FLAG = {"cpus": "Nano CPUs", "cpu_period": "CPU Period", "cpu_quota": "CPU Quota"}


@dataclass
class UpdateRequest:
    flags: dict[str, str] = field(default_factory=dict)   # only the flags the user gave
    restart: str | None = None

    def empty(self) -> bool:
        return not self.flags and self.restart is None


@dataclass
class UpdateResult:
    warnings: list[str] = field(default_factory=list)
    applied_live: bool = False    # False: stored only (the container has no live cgroup)


def validate_update(req: UpdateRequest) -> None:
    """Syntax and per-flag ranges, before any container is touched (a bad value changes nothing)."""
    if req.empty():
        raise InvalidArgument("you must provide one or more flags when using this command")
    unknown = set(req.flags) - set(UPDATE_FLAGS)
    if unknown:
        raise InvalidArgument(f"unknown update flags: {', '.join(sorted(unknown))}")
    f = req.flags
    parsers = {
        "memory": lambda v: units.memory(v), "memory_swap": lambda v: units.memory_swap(v),
        "memory_reservation": lambda v: units.ram_in_bytes(v, "--memory-reservation"),
        "cpus": lambda v: units.cpus(v), "cpu_shares": lambda v: units.cpu_shares(v),
        "cpu_period": lambda v: units.cpu_period(v), "cpu_quota": lambda v: units.cpu_quota(v),
        "cpuset_cpus": lambda v: units.cpuset(v, "cpus"), "cpuset_mems": lambda v: units.cpuset(v, "mems"),
        "blkio_weight": lambda v: units.blkio_weight(v), "pids_limit": lambda v: units.pids_limit(v),
    }
    for k, v in f.items():
        parsers[k](v)
    if "memory" in f and units.memory(f["memory"]) and units.memory(f["memory"]) < units.MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if "cpus" in f and ("cpu_period" in f or "cpu_quota" in f) and units.cpus(f["cpus"]) != (0, 0):
        which = "CPU Period" if "cpu_period" in f else "CPU Quota"
        raise InvalidArgument(f"Conflicting options: Nano CPUs and {which} cannot both be set")
    if req.restart is not None:
        from nsbox.runtime.specgen import parse_restart
        parse_restart(req.restart)


def _set(v) -> bool:
    """A stored raw flag that actually sets something ("0" means unset for these flags)."""
    return v not in (None, "", "0", 0)


def merge_flags(old: dict, new: dict) -> dict:
    """docker update semantics on the raw flags: given flags replace stored ones; with docker's
    cross-update conflicts (cpus vs quota/period, memory above an explicit memory-swap)."""
    merged = dict(old)
    for mine, others in (("cpus", ("cpu_period", "cpu_quota")), ("cpu_period", ("cpus",)),
                         ("cpu_quota", ("cpus",))):
        if _set(new.get(mine)):
            for o in others:
                if _set(old.get(o)) and o not in new:
                    raise InvalidArgument(f"Conflicting options: {_CPU_FLAG[mine]} cannot be updated as "
                                          f"{_CPU_FLAG[o]} has already been set")
    if "memory" in new and "memory_swap" not in new and _set(old.get("memory_swap")) \
            and str(old["memory_swap"]) != "-1":
        if units.memory(new["memory"]) > units.memory_swap(old["memory_swap"]):
            raise InvalidArgument("Memory limit should be smaller than already set memoryswap limit, "
                                  "update the memoryswap at the same time")
    merged.update(new)
    return {k: v for k, v in merged.items() if v is not None}


def _live_delta(merged: Resources, given: set[str]) -> Resources:
    """Only the knobs this update touches (so an unrelated unsupported knob does not warn again),
    with "unset" turned into an explicit "unlimited" write."""
    r = Resources(devices=None)  # devices are fixed at create, like docker update
    if given & {"memory", "memory_swap"}:
        r.memory.limit = merged.memory.limit if merged.memory.limit else -1
        r.memory.swap = merged.memory.swap if merged.memory.swap else -1
    if "memory_reservation" in given:
        r.memory.reservation = merged.memory.reservation or -1
    if given & {"cpus", "cpu_period", "cpu_quota"}:
        r.cpu.quota = merged.cpu.quota if merged.cpu.quota else -1
        r.cpu.period = merged.cpu.period or units.CPU_PERIOD
    if "cpu_shares" in given:
        r.cpu.shares = merged.cpu.shares or 1024   # 0 = back to the kernel default
    if "cpuset_cpus" in given:
        r.cpu.cpus = merged.cpu.cpus or units.available_cpus()
    if "cpuset_mems" in given:
        r.cpu.mems = merged.cpu.mems or units.available_mems()
    if "blkio_weight" in given and merged.block_io.weight:
        r.block_io.weight = merged.block_io.weight
    if "pids_limit" in given:
        r.pids.limit = merged.pids.limit if merged.pids.limit else -1
    return r


def predict_warnings(r: Resources) -> list[str]:
    """What the kernel will not honour, said before the cgroup exists (create, or update of a stopped
    container): the cgroup itself is made later by the monitor, whose warnings never reach the CLI."""
    from nsbox.runtime.cgroups.blockdev import weight_warning
    out: list[str] = []
    if r.block_io.weight:
        w = weight_warning()
        if w:
            out.append(w)
    for wd in r.block_io.weight_device:
        w = weight_warning(wd.major, wd.minor)
        if w:
            out.append(w)
    if r.memory.swap not in (None, 0) and r.memory.limit and get_driver().version == 1:
        mounts = getattr(get_driver(), "mounts", {})
        if "memory" in mounts and not os.path.exists(os.path.join(mounts["memory"], "memory.memsw.limit_in_bytes")):
            out.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                       "Memory limited without swap.")
    return out


def _rollback(cg, stored: dict, given: set[str]) -> None:
    """Best effort: put back the knobs an update may have written before one failed, so the live
    cgroup matches the (unchanged) stored config again."""
    try:
        cg.update(_live_delta(Resources.from_dict(stored), given))
    except (CgroupError, OSError, ValueError):
        pass


def update_container(rec: ContainerRecord, req: UpdateRequest) -> UpdateResult:
    """Apply `req` to one container: persist, and write the live cgroup if there is one."""
    from nsbox.runtime.cleanup import reconcile
    from nsbox.runtime.specgen import parse_restart
    reconcile(rec.paths, rec)  # takes the lock itself; afterwards the recorded state is true
    res = UpdateResult()
    with rec.lock():
        cfg = rec.config()
        hc = cfg.setdefault("HostConfig", {})
        if req.restart is not None:
            if hc.get("AutoRemove") and parse_restart(req.restart)["Name"]:
                raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled "
                                      "for the container")
            hc["RestartPolicy"] = parse_restart(req.restart)
        if req.flags:
            old = dict(hc.get("Resources") or {})
            merged = merge_flags(old, req.flags)
            resources, warnings = units.resources_from_flags(**merged, privileged=bool(hc.get("Privileged")))
            res.warnings += warnings
            spec_res = resources.to_dict()
            # the device allowlist is fixed at create: keep exactly what the container was made with
            stored = cfg["Spec"]["linux"].get("resources") or {}
            if "devices" in stored:
                spec_res["devices"] = stored["devices"]
            st = rec.load_state()
            path = cfg["Spec"]["linux"].get("cgroupsPath")
            if st.Status in (S.RUNNING, S.PAUSED) and path:
                cg = get_driver().open(path)
                if cg.exists():
                    # the kernel has the last word: a failed write raises and nothing is persisted
                    try:
                        live = cg.update(_live_delta(resources, set(req.flags)))
                    except CgroupError:
                        _rollback(cg, stored, set(req.flags))
                        raise
                    res.warnings += [w for w in live if w not in res.warnings]
                    res.applied_live = True
            if not res.applied_live:
                res.warnings += [w for w in predict_warnings(resources) if w not in res.warnings]
            hc["Resources"] = merged
            cfg["Spec"]["linux"]["resources"] = spec_res
        rec.save_config(cfg)
    return res


# ---- stats ------------------------------------------------------------------

@dataclass
class StatsSample:
    id: str
    name: str
    running: bool = False
    taken_ns: int = 0             # time.monotonic_ns() of the sample
    cpu_ns: int = 0
    mem_usage: int = 0
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0
    pids: int = 0


@dataclass
class StatsRow:
    Container: str
    ID: str
    Name: str
    CPUPerc: str
    MemUsage: str
    MemPerc: str
    NetIO: str
    BlockIO: str
    PIDs: str

    def to_dict(self) -> dict:
        return asdict(self)


def online_cpus() -> int:
    """Online CPUs, like docker's OnlineCPUs (the ones this host can schedule on)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return len(units.parse_uint_list(f.read().strip())) or 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def net_dev(pid: int) -> tuple[int, int]:
    """(rx, tx) bytes summed over the interfaces of pid's netns, loopback excluded."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        cols = rest.split()
        if len(cols) >= 9:
            rx += int(cols[0])
            tx += int(cols[8])
    return rx, tx


def sample(rec: ContainerRecord, cfg: dict, st: S.ContainerState) -> StatsSample:
    s = StatsSample(id=rec.id, name=cfg.get("Name", "").lstrip("/"), taken_ns=time.monotonic_ns())
    if st.Status not in (S.RUNNING, S.PAUSED) or not st.Pid:
        return s
    path = cfg.get("Spec", {}).get("linux", {}).get("cgroupsPath")
    try:
        cg = get_driver().open(path)
        if not cg.exists():
            return s
        d = cg.stats()
    except (OSError, ValueError):
        return s
    s.running = True
    s.cpu_ns = int(d.get("cpu_usage_ns") or 0)
    s.mem_usage = int(d.get("memory_usage") or 0)
    s.mem_limit = int(d.get("memory_limit") or 0)
    s.blk_read = int(d.get("blkio_read_bytes") or 0)
    s.blk_write = int(d.get("blkio_write_bytes") or 0)
    s.pids = int(d.get("pids_current") or 0)
    if cfg.get("HostConfig", {}).get("NetworkMode") != "host":  # docker shows 0B for host networking
        s.net_rx, s.net_tx = net_dev(st.Pid)
    return s


def cpu_percent(prev: StatsSample | None, cur: StatsSample, ncpu: int | None = None) -> float:
    """docker: cpuDelta / systemDelta * onlineCPUs * 100, where systemDelta is host CPU time
    (all CPUs) between the samples. We take systemDelta = wall time x online CPUs (the host's
    /proc/stat total is that, up to jiffy rounding), so 100% = one CPU fully busy."""
    if prev is None or not cur.running or not prev.running:
        return 0.0
    ncpu = ncpu or online_cpus()
    cpu_delta = cur.cpu_ns - prev.cpu_ns
    system_delta = (cur.taken_ns - prev.taken_ns) * ncpu
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * ncpu * 100.0


def _size(n: float, base: int, abbrs: list[str]) -> str:
    """go-units CustomSize("%.4g%s", ...)."""
    i = 0
    while n >= base and i < len(abbrs) - 1:
        n /= base
        i += 1
    return f"{n:.4g}{abbrs[i]}"


def human_size(n: float) -> str:       # go-units HumanSize (decimal): NET I/O, BLOCK I/O
    return _size(float(n), 1000, ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"])


def bytes_size(n: float) -> str:       # go-units BytesSize (binary): MEM USAGE / LIMIT
    return _size(float(n), 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"])


def make_row(prev: StatsSample | None, cur: StatsSample, ref: str | None = None, no_trunc: bool = False,
             ncpu: int | None = None) -> StatsRow:
    cid = cur.id if no_trunc else cur.id[:12]
    if not cur.running:  # docker shows a stopped container with zeros and "--" for its name... and 0 pids
        return StatsRow(Container=ref or cid, ID=cid, Name=cur.name or "--", CPUPerc="0.00%",
                        MemUsage="0B / 0B", MemPerc="0.00%", NetIO="0B / 0B", BlockIO="0B / 0B", PIDs="0")
    mem_pct = cur.mem_usage / cur.mem_limit * 100.0 if cur.mem_limit else 0.0
    return StatsRow(
        Container=ref or cid, ID=cid, Name=cur.name,
        CPUPerc=f"{cpu_percent(prev, cur, ncpu):.2f}%",
        MemUsage=f"{bytes_size(cur.mem_usage)} / {bytes_size(cur.mem_limit)}",
        MemPerc=f"{mem_pct:.2f}%",
        NetIO=f"{human_size(cur.net_rx)} / {human_size(cur.net_tx)}",
        BlockIO=f"{human_size(cur.blk_read)} / {human_size(cur.blk_write)}",
        PIDs=str(cur.pids),
    )


@dataclass
class StatsTarget:
    rec: ContainerRecord
    ref: str | None = None        # what the user typed (docker's .Container); None when listing


class StatsCollector:
    """Keeps the previous sample per container so each frame's CPU % covers the time since the
    last frame (docker's precpu_stats)."""

    def __init__(self, engine, refs: list[str], all_: bool = False, no_trunc: bool = False):
        self.engine = engine
        self.refs = refs
        self.all_ = all_
        self.no_trunc = no_trunc
        self.prev: dict[str, StatsSample] = {}
        self.ncpu = online_cpus()

    def targets(self) -> list[StatsTarget]:
        if self.refs:
            # resolved each frame: a named container that is removed meanwhile drops out
            out = []
            for ref in self.refs:
                try:
                    out.append(StatsTarget(self.engine.get(ref), ref))
                except Exception:
                    continue
            return out
        return [StatsTarget(rec) for rec, _cfg, _st in self.engine.list(self.all_)]

    def resolve(self) -> list[StatsTarget]:
        """Fail early (NotFound) for a container the user named that does not exist."""
        return [StatsTarget(self.engine.get(ref), ref) for ref in self.refs]

    def _sample_all(self) -> list[tuple[StatsTarget, StatsSample]]:
        out = []
        for t in self.targets():
            try:
                st = self.engine.state(t.rec)
                if not t.rec.exists():
                    continue
                cfg = t.rec.config()
            except (OSError, ValueError):
                continue
            out.append((t, sample(t.rec, cfg, st)))
        return out

    def prime(self) -> None:
        """A first sample so the first frame already has a CPU delta."""
        for t, s in self._sample_all():
            self.prev[s.id] = s

    def frame(self) -> list[StatsRow]:
        rows = []
        cur: dict[str, StatsSample] = {}
        for t, s in self._sample_all():
            rows.append(make_row(self.prev.get(s.id), s, t.ref, self.no_trunc, self.ncpu))
            cur[s.id] = s
        self.prev = cur
        return rows


def stats_frames(collector: StatsCollector, stream: bool, first_gap: float = 0.5, interval: float = 1.0):
    """Yield lists of rows: one frame for --no-stream (two samples `first_gap` apart, since docker's
    one-shot answer also carries the previous read), else a frame every `interval` forever."""
    collector.prime()
    time.sleep(first_gap)
    yield collector.frame()
    while stream:
        time.sleep(interval)
        yield collector.frame()
