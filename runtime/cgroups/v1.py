"""cgroup v1 driver: one directory per controller hierarchy (plus, on hybrid hosts, a mirror in
the controller-less cgroup2 so we get an atomic whole-tree cgroup.kill and populated events)."""
from __future__ import annotations

import os
import time

from nsbox.runtime.cgroups import files, stats as _stats
from nsbox.runtime.cgroups.base import Cgroup, Driver, KnobWriter, rmdir_empty_parents, rmdir_tree
from nsbox.runtime.cgroups.blockdev import weight_warning
from nsbox.runtime.cgroups.files import CgroupError
from nsbox.runtime.cgroups.resources import Resources, v1_memory_order

CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
UNIFIED = "unified"  # key for the cgroup2 mirror


def parse_mountinfo(text: str) -> dict[str, str]:
    """controller -> mount point for v1 hierarchies, plus 'unified' -> cgroup2 mount if any."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        mnt, fstype = lf[4], rf[0]
        if fstype == "cgroup2":
            out.setdefault(UNIFIED, mnt)
        elif fstype == "cgroup":
            for opt in rf[2].split(","):
                if opt in CONTROLLERS:
                    out.setdefault(opt, mnt)
    return out


def _mounts() -> dict[str, str]:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


class V1Cgroup(Cgroup):
    version = 1

    def __init__(self, path: str, mounts: dict[str, str]) -> None:
        super().__init__(path)
        self.mounts = mounts
        self.ctrl_dirs = {c: os.path.join(m, self.path) for c, m in mounts.items()}

    def dirs(self) -> list[str]:
        return list(dict.fromkeys(self.ctrl_dirs.values()))  # co-mounted controllers share a dir

    def _f(self, ctrl: str, name: str) -> str:
        # a missing controller gives a path that cannot exist -> ENOENT -> a warning
        return os.path.join(self.ctrl_dirs.get(ctrl, f"/nonexistent-{ctrl}-hierarchy"), name)

    # -- creation --
    def _mkdirs(self) -> None:
        for ctrl, mnt in self.mounts.items():
            d = mnt
            for part in self.path.split("/"):
                parent, d = d, os.path.join(d, part)
                try:
                    os.mkdir(d)
                except FileExistsError:
                    pass
                if ctrl == "cpuset":
                    # a new cpuset starts empty and joining it gives ENOSPC: copy the parent's down
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        if not files.read(os.path.join(d, knob)):
                            files.write(os.path.join(d, knob), files.read(os.path.join(parent, knob)))

    def join(self, pid: int) -> None:
        for d in self.dirs():
            try:
                files.write(os.path.join(d, "cgroup.procs"), pid)
            except OSError as e:
                raise CgroupError(f"cannot join {d}: {os.strerror(e.errno)}", e.errno) from None

    # -- limits --
    def _apply(self, r: Resources, w: KnobWriter, devices: bool) -> None:
        m = r.memory
        if m.limit is not None or m.swap is not None:
            cur = files.read_int(self._f("memory", "memory.limit_in_bytes"))
            if cur is not None and cur >= _stats.V1_UNLIMITED:
                cur = None
            for knob in v1_memory_order(cur, m.limit):
                if knob == "limit" and m.limit is not None:
                    w.set(self._f("memory", "memory.limit_in_bytes"), m.limit, "memory limit")
                elif knob == "memsw" and m.swap not in (None, 0):
                    w.set(self._f("memory", "memory.memsw.limit_in_bytes"), m.swap, "memory+swap limit")
        if m.reservation is not None:
            w.set(self._f("memory", "memory.soft_limit_in_bytes"), m.reservation, "memory reservation")
        if m.disable_oom_killer is not None:
            w.set(self._f("memory", "memory.oom_control"), int(m.disable_oom_killer), "oom-kill-disable")
        if m.swappiness is not None:
            w.set(self._f("memory", "memory.swappiness"), m.swappiness, "memory swappiness")
        if m.oom_group:
            w.warn("memory oom group: cgroup v1 has no memory.oom.group; only the chosen task is killed")
        c = r.cpu
        if c.shares:
            w.set(self._f("cpu", "cpu.shares"), c.shares, "cpu shares")
        if c.period is not None:
            w.set(self._f("cpu", "cpu.cfs_period_us"), c.period, "cpu period")
        if c.quota is not None:
            w.set(self._f("cpu", "cpu.cfs_quota_us"), c.quota if c.quota > 0 else -1, "cpu quota")
        if c.cpus:
            w.set(self._f("cpuset", "cpuset.cpus"), c.cpus, "cpuset cpus")
        if c.mems:
            w.set(self._f("cpuset", "cpuset.mems"), c.mems, "cpuset mems")
        if r.pids.limit is not None:
            w.set(self._f("pids", "pids.max"), r.pids.limit if r.pids.limit > 0 else "max", "pids limit")
        self._apply_blkio(r, w)
        if devices and r.devices is not None:
            for rule in r.devices:
                knob = "devices.allow" if rule.allow else "devices.deny"
                w.set(self._f("devices", knob), rule.v1_line(), f"device rule {rule.v1_line()!r}")

    def _apply_blkio(self, r: Resources, w: KnobWriter) -> None:
        b = r.block_io
        if b.weight:
            # the CFQ-era blkio.weight is gone on modern kernels; bfq's knob is the only one left
            knob = "blkio.weight" if os.path.exists(self._f("blkio", "blkio.weight")) else "blkio.bfq.weight"
            if w.set(self._f("blkio", knob), b.weight, "blkio weight"):
                msg = weight_warning()
                if msg:
                    w.warn(msg)
        for wd in b.weight_device:
            knob = ("blkio.weight_device" if os.path.exists(self._f("blkio", "blkio.weight_device"))
                    else "blkio.bfq.weight_device")
            if w.set(self._f("blkio", knob), f"{wd.major}:{wd.minor} {wd.weight}",
                     f"blkio weight for device {wd.major}:{wd.minor}"):
                msg = weight_warning(wd.major, wd.minor)
                if msg:
                    w.warn(msg)
        for name, devs in b.throttles().items():
            for d in devs:
                w.set(self._f("blkio", f"blkio.throttle.{name}"), f"{d.major}:{d.minor} {d.rate}",
                      f"blkio throttle {name} {d.major}:{d.minor}")

    def update(self, resources: Resources) -> list[str]:
        w = KnobWriter()
        self._apply(resources, w, devices=False)  # like docker update: devices are fixed at create
        self.warnings.extend(x for x in w.warnings if x not in self.warnings)
        return w.warnings

    # -- freezer --
    def _freezer_state(self) -> str:
        return files.read_or(self._f("freezer", "freezer.state"), "") or ""

    def freeze(self, timeout: float = 10.0) -> None:
        path = self._f("freezer", "freezer.state")
        end = time.monotonic() + timeout
        while True:
            try:
                files.write(path, "FROZEN")
            except OSError as e:
                raise CgroupError(f"cannot freeze {self.path}: {os.strerror(e.errno)}", e.errno) from None
            # reads FREEZING until every task has stopped; rewriting nudges tasks that raced a fork
            for _ in range(20):
                if self._freezer_state() == "FROZEN":
                    return
                time.sleep(0.005)
            if time.monotonic() > end:
                files.write(path, "THAWED")
                raise CgroupError(f"cgroup {self.path}: stuck in FREEZING after {timeout}s")

    def thaw(self) -> None:
        try:
            files.write(self._f("freezer", "freezer.state"), "THAWED")
        except OSError as e:
            raise CgroupError(f"cannot thaw {self.path}: {os.strerror(e.errno)}", e.errno) from None
        for _ in range(200):
            if self._freezer_state() != "FROZEN":
                return
            time.sleep(0.005)

    def is_frozen(self) -> bool:
        return self._freezer_state() == "FROZEN"

    # -- queries --
    def pids(self) -> list[int]:
        seen: set[int] = set()
        for c, d in self.ctrl_dirs.items():
            if c != UNIFIED:
                seen.update(files.read_pids(os.path.join(d, "cgroup.procs")))
        return sorted(seen)

    def stats(self) -> dict:
        return _stats.v1_stats(self.ctrl_dirs)

    def oom_killed(self) -> bool:
        return files.read_kv(self._f("memory", "memory.oom_control")).get("oom_kill", 0) > 0

    # -- teardown --
    def _kill_native(self) -> bool:
        kill = os.path.join(self.ctrl_dirs.get(UNIFIED, "/nonexistent"), "cgroup.kill")
        if not os.path.exists(kill):
            return False
        try:
            files.write(kill, 1)
            return True
        except OSError:
            return False

    def _remove_dirs(self, remove_empty_parents: bool) -> None:
        for ctrl, mnt in self.mounts.items():
            rmdir_tree(os.path.join(mnt, self.path))
            if remove_empty_parents:
                rmdir_empty_parents(mnt, self.path)


class V1Driver(Driver):
    version = 1
    name = "cgroupfs v1"

    def __init__(self, mounts: dict[str, str] | None = None) -> None:
        self.mounts = mounts if mounts is not None else _mounts()

    def create(self, path: str, resources: Resources | None = None) -> V1Cgroup:
        cg = V1Cgroup(path, self.mounts)
        try:
            cg._mkdirs()
            w = KnobWriter()
            missing = [c for c in CONTROLLERS if c not in self.mounts]
            if missing:
                w.warn("cgroup v1 controllers not mounted: " + ", ".join(missing))
            cg._apply(resources or Resources(devices=None), w, devices=True)
        except BaseException:
            cg.destroy()
            raise
        cg.warnings = w.warnings
        return cg

    def open(self, path: str) -> V1Cgroup:
        return V1Cgroup(path, self.mounts)
