"""What both drivers share: the knob writer that turns "kernel can't" into warnings, and the
kill / wait-empty / rmdir-depth-first teardown."""
from __future__ import annotations

import errno
import os
import signal
import time
from abc import ABC, abstractmethod

from nsbox.runtime.cgroups import files
from nsbox.runtime.cgroups.files import CgroupError
from nsbox.runtime.cgroups.resources import Resources


class KnobWriter:
    """Writes knobs; unsupported ones become warnings, real errors raise CgroupError."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def set(self, path: str, value: str | int, what: str) -> bool:
        try:
            files.write(path, value)
            return True
        except OSError as e:
            if e.errno in files.UNSUPPORTED_ERRNOS:
                why = "not supported by this kernel" if e.errno == errno.ENOENT else os.strerror(e.errno)
                self.warn(f"{what}: {why} ({os.path.basename(path)}); the limit is not applied")
                return False
            raise CgroupError(f"{what}: cannot write {str(value)!r} to {path}: {os.strerror(e.errno)}",
                              e.errno) from None


def _wait(pred, timeout: float, step: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(step)
        step = min(step * 2, 0.1)


def rmdir_tree(top: str, attempts: int = 40) -> None:
    """rmdir a cgroup dir and any sub-cgroups, deepest first; retry EBUSY (tasks still exiting)."""
    if not os.path.isdir(top):
        return
    subdirs = [os.path.join(r, d) for r, ds, _ in os.walk(top) for d in ds]
    for d in sorted(subdirs, key=lambda p: p.count("/"), reverse=True) + [top]:
        delay = 0.005
        for i in range(attempts):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or i == attempts - 1:
                    raise CgroupError(f"cannot remove cgroup {d}: {os.strerror(e.errno)}", e.errno) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)


def rmdir_empty_parents(mount: str, rel: str) -> None:
    """Remove now-empty ancestors of `rel` below `mount` (pod parents, the per-root parent)."""
    parts = rel.strip("/").split("/")[:-1]
    while parts:
        d = os.path.join(mount, *parts)
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            return  # ENOTEMPTY/EBUSY: someone else still lives there
        parts.pop()


class Cgroup(ABC):
    version: int

    def __init__(self, path: str) -> None:
        self.path = path.strip("/")
        self.warnings: list[str] = []

    # -- per driver --
    @abstractmethod
    def dirs(self) -> list[str]:
        """Every directory this cgroup has (one per v1 hierarchy, one for v2)."""

    @abstractmethod
    def join(self, pid: int) -> None: ...

    @abstractmethod
    def update(self, resources: Resources) -> list[str]:
        """Apply new limits to a live cgroup; returns warnings for knobs the kernel can't honour."""

    @abstractmethod
    def freeze(self) -> None: ...

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def is_frozen(self) -> bool: ...

    @abstractmethod
    def pids(self) -> list[int]: ...

    @abstractmethod
    def stats(self) -> dict: ...

    @abstractmethod
    def oom_killed(self) -> bool: ...

    @abstractmethod
    def _kill_native(self) -> bool:
        """Whole-tree atomic kill (cgroup.kill) if available; False if not."""

    @abstractmethod
    def _remove_dirs(self, remove_empty_parents: bool) -> None: ...

    # -- shared --
    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def join_self(self) -> None:
        """Called by the container child first thing: "0" means the writer itself, which is right
        in any pid namespace; children forked after this inherit every hierarchy (no join race)."""
        self.join(0)

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL everything in the cgroup and wait until it is empty."""
        if not self.exists():
            return
        if self._kill_native() and _wait(lambda: not self.pids(), min(timeout, 2.0)):
            return
        # fallback (v1 without a unified mirror, or pre-5.14 v2): freeze so nobody forks while we
        # iterate, SIGKILL each task, thaw so the signals are delivered
        end = time.monotonic() + timeout
        while self.pids():
            frozen = False
            try:
                self.freeze()
                frozen = True
            except CgroupError:
                pass
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if frozen:
                self.thaw()
            if _wait(lambda: not self.pids(), 1.0):
                return
            if time.monotonic() > end:
                raise CgroupError(f"cgroup {self.path}: processes survive SIGKILL: {self.pids()}")

    def destroy(self, remove_empty_parents: bool = False) -> None:
        """Kill, wait for empty, rmdir depth-first. Idempotent."""
        if self.exists():
            try:
                if self.is_frozen():
                    self.thaw()
            except CgroupError:
                pass
            self.kill_all()
        self._remove_dirs(remove_empty_parents)


class Driver(ABC):
    version: int
    name: str

    @abstractmethod
    def create(self, path: str, resources: Resources | None = None) -> Cgroup:
        """Create (parents too) and apply limits; the Cgroup's .warnings lists what wasn't applied."""

    @abstractmethod
    def open(self, path: str) -> Cgroup: ...
