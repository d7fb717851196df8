"""cgroup v2 driver: one directory; controllers enabled top-down in each parent's subtree_control."""
from __future__ import annotations

import os
import time

from nsbox.runtime.cgroups import files, stats as _stats
from nsbox.runtime.cgroups.base import Cgroup, Driver, KnobWriter, rmdir_empty_parents, rmdir_tree
from nsbox.runtime.cgroups.blockdev import weight_warning
from nsbox.runtime.cgroups.files import CgroupError
from nsbox.runtime.cgroups.resources import (Resources, blkio_weight_to_io_weight, cpu_max_value,
                                            io_max_lines, shares_to_weight, swap_to_v2, v2_max)

MOUNT = "/sys/fs/cgroup"
WANTED = ("cpuset", "cpu", "io", "memory", "pids")


class V2Cgroup(Cgroup):
    version = 2

    def __init__(self, path: str, mount: str = MOUNT) -> None:
        super().__init__(path)
        self.mount = mount
        self.dir = os.path.join(mount, self.path)

    def dirs(self) -> list[str]:
        return [self.dir]

    def _f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _mkdirs(self, w: KnobWriter) -> None:
        d = self.mount
        for part in self.path.split("/"):
            self._enable_controllers(d, w)  # "no internal processes": parents delegate, only leaves hold tasks
            d = os.path.join(d, part)
            try:
                os.mkdir(d)
            except FileExistsError:
                pass

    @staticmethod
    def _enable_controllers(d: str, w: KnobWriter) -> None:
        avail = set((files.read_or(os.path.join(d, "cgroup.controllers"), "") or "").split())
        enabled = set((files.read_or(os.path.join(d, "cgroup.subtree_control"), "") or "").split())
        for c in WANTED:
            if c in enabled:
                continue
            if c not in avail:
                w.warn(f"cgroup v2 controller {c!r} is not available in {d}; its limits are not applied")
                continue
            try:
                files.write(os.path.join(d, "cgroup.subtree_control"), f"+{c}")
            except OSError as e:
                w.warn(f"cannot enable cgroup v2 controller {c!r} in {d}: {os.strerror(e.errno)}")

    def join(self, pid: int) -> None:
        try:
            files.write(self._f("cgroup.procs"), pid)
        except OSError as e:
            raise CgroupError(f"cannot join {self.dir}: {os.strerror(e.errno)}", e.errno) from None

    def _apply(self, r: Resources, w: KnobWriter, devices: bool) -> None:
        m = r.memory
        if m.limit is not None:
            w.set(self._f("memory.max"), v2_max(m.limit), "memory limit")
        try:
            swap = swap_to_v2(m.swap, m.limit)
        except ValueError as e:
            raise CgroupError(str(e)) from None
        if swap is not None:
            w.set(self._f("memory.swap.max"), swap, "memory swap limit")
        if m.reservation is not None:
            w.set(self._f("memory.low"), v2_max(m.reservation), "memory reservation")
        if m.oom_group is not None:
            w.set(self._f("memory.oom.group"), int(m.oom_group), "memory oom group")
        if m.disable_oom_killer:
            w.warn("oom-kill-disable: cgroup v2 cannot disable the OOM killer; ignored")
        if m.swappiness is not None:
            w.warn("memory swappiness: cgroup v2 has no per-cgroup swappiness; ignored")
        c = r.cpu
        if c.shares:
            w.set(self._f("cpu.weight"), shares_to_weight(c.shares), "cpu shares")
        cm = cpu_max_value(c.quota, c.period)
        if cm is not None:
            w.set(self._f("cpu.max"), cm, "cpu quota/period")
        if c.cpus:
            w.set(self._f("cpuset.cpus"), c.cpus, "cpuset cpus")
        if c.mems:
            w.set(self._f("cpuset.mems"), c.mems, "cpuset mems")
        if r.pids.limit is not None:
            w.set(self._f("pids.max"), r.pids.limit if r.pids.limit > 0 else "max", "pids limit")
        b = r.block_io
        if b.weight:
            if os.path.exists(self._f("io.bfq.weight")):
                ok = w.set(self._f("io.bfq.weight"), b.weight, "blkio weight")
            else:
                ok = w.set(self._f("io.weight"), f"default {blkio_weight_to_io_weight(b.weight)}", "blkio weight")
            msg = weight_warning() if ok else None
            if msg:
                w.warn(msg)
        for wd in b.weight_device:
            knob = "io.bfq.weight" if os.path.exists(self._f("io.bfq.weight")) else "io.weight"
            val = wd.weight if knob == "io.bfq.weight" else blkio_weight_to_io_weight(wd.weight)
            if w.set(self._f(knob), f"{wd.major}:{wd.minor} {val}", f"blkio weight for device {wd.major}:{wd.minor}"):
                msg = weight_warning(wd.major, wd.minor)
                if msg:
                    w.warn(msg)
        for line in io_max_lines(b):
            w.set(self._f("io.max"), line, f"blkio throttle {line.split()[0]}")
        if devices and r.devices is not None:
            self._apply_devices(r, w)

    def _apply_devices(self, r: Resources, w: KnobWriter) -> None:
        try:
            from nsbox.runtime.cgroups import bpf
            bpf.attach_device_filter(self.dir, r.devices or [])
        except Exception as e:  # noqa: BLE001 - any failure here must be visible, not fatal
            w.warn(f"device allowlist: cannot attach the cgroup v2 eBPF device filter: {e}; "
                   f"devices are NOT restricted")

    def update(self, resources: Resources) -> list[str]:
        w = KnobWriter()
        self._apply(resources, w, devices=False)
        self.warnings.extend(x for x in w.warnings if x not in self.warnings)
        return w.warnings

    def _events(self) -> dict[str, int]:
        return files.read_kv(self._f("cgroup.events"))

    def freeze(self, timeout: float = 10.0) -> None:
        self._set_frozen(1, timeout)

    def thaw(self, timeout: float = 10.0) -> None:
        self._set_frozen(0, timeout)

    def _set_frozen(self, v: int, timeout: float) -> None:
        try:
            files.write(self._f("cgroup.freeze"), v)
        except OSError as e:
            raise CgroupError(f"cannot {'freeze' if v else 'thaw'} {self.path}: {os.strerror(e.errno)}",
                              e.errno) from None
        end = time.monotonic() + timeout
        while self._events().get("frozen", 0) != v:
            if time.monotonic() > end:
                raise CgroupError(f"cgroup {self.path}: frozen state did not become {v}")
            time.sleep(0.005)

    def is_frozen(self) -> bool:
        return self._events().get("frozen", 0) == 1

    def pids(self) -> list[int]:
        out: set[int] = set()
        if os.path.isdir(self.dir):
            for root, _, names in os.walk(self.dir):  # sub-cgroups the container made count too
                if "cgroup.procs" in names:
                    out.update(files.read_pids(os.path.join(root, "cgroup.procs")))
        return sorted(out)

    def stats(self) -> dict:
        return _stats.v2_stats(self.dir)

    def oom_killed(self) -> bool:
        return files.read_kv(self._f("memory.events")).get("oom_kill", 0) > 0

    def _kill_native(self) -> bool:
        if not os.path.exists(self._f("cgroup.kill")):
            return False  # kernel < 5.14
        try:
            files.write(self._f("cgroup.kill"), 1)
            return True
        except OSError:
            return False

    def _remove_dirs(self, remove_empty_parents: bool) -> None:
        rmdir_tree(self.dir)
        if remove_empty_parents:
            rmdir_empty_parents(self.mount, self.path)


class V2Driver(Driver):
    version = 2
    name = "cgroupfs v2"

    def __init__(self, mount: str = MOUNT) -> None:
        self.mount = mount

    def create(self, path: str, resources: Resources | None = None) -> V2Cgroup:
        cg = V2Cgroup(path, self.mount)
        w = KnobWriter()
        try:
            cg._mkdirs(w)
            cg._apply(resources or Resources(devices=None), w, devices=True)
        except BaseException:
            cg.destroy()
            raise
        cg.warnings = w.warnings
        return cg

    def open(self, path: str) -> V2Cgroup:
        return V2Cgroup(path, self.mount)
