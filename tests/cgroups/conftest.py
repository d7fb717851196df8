"""Fixtures for real-kernel cgroup tests: a per-test cgroup parent (via Paths(root=tmp)), a cgroup
factory that always destroys, and a spawner that forks a child which joins via join_self() then
execs; every child is killed by PID and reaped in the finalizer, pass or fail."""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field

import pytest

from nsbox.runtime.cgroups import Cgroup, Resources, get_driver, is_v2_host
from nsbox.runtime.paths import Paths

PY = sys.executable


def root_disk() -> tuple[int, int]:
    """MAJ:MIN of the whole disk holding / (vda 254:0 here), not the partition."""
    dev = os.stat("/").st_dev
    maj, mnr = os.major(dev), os.minor(dev)
    real = os.path.realpath(f"/sys/dev/block/{maj}:{mnr}")
    if os.path.exists(os.path.join(real, "partition")):
        maj, mnr = map(int, open(os.path.join(os.path.dirname(real), "dev")).read().split(":"))
    return maj, mnr


def root_disk_path() -> str | None:
    maj, mnr = root_disk()
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{maj}:{mnr}"))
    p = f"/dev/{name}"
    return p if os.path.exists(p) else None


@dataclass
class Child:
    pid: int
    status: int | None = None

    def wait(self, timeout: float = 60.0) -> int:
        """Reap and return the raw wait status (bounded, so a hung child fails the test)."""
        end = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
                break
            if time.monotonic() > end:
                raise TimeoutError(f"child {self.pid} still running after {timeout}s")
            time.sleep(0.02)
        return self.status

    def alive(self) -> bool:
        return self.status is None and os.waitpid(self.pid, os.WNOHANG) == (0, 0)


@dataclass
class Lab:
    parent: str
    cgroups: list[Cgroup] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.driver = get_driver()

    def create(self, name: str = "ctr", resources: Resources | None = None) -> Cgroup:
        cg = self.driver.create(f"{self.parent}/{name}", resources or Resources(devices=None))
        self.cgroups.append(cg)
        return cg

    def spawn(self, cg: Cgroup, argv: list[str], stdout: int | None = None) -> Child:
        """Fork; the child joins via join_self() before exec. A CLOEXEC pipe reports join errors."""
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                cg.join_self()
                if stdout is not None:
                    os.dup2(stdout, 1)
                os.execv(argv[0], argv)
            except BaseException as e:  # noqa: BLE001
                os.write(w, repr(e).encode())
            os._exit(111)
        os.close(w)
        err = os.read(r, 4096)
        os.close(r)
        child = Child(pid)
        self.children.append(child)
        if err:
            child.wait()
            raise RuntimeError(f"child failed before exec: {err.decode()}")
        return child

    def python(self, cg: Cgroup, code: str, stdout: int | None = None) -> Child:
        return self.spawn(cg, [PY, "-c", code], stdout)

    def cleanup(self) -> None:
        for c in self.children:
            if c.status is None:
                try:
                    os.kill(c.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for cg in reversed(self.cgroups):
            try:
                cg.destroy(remove_empty_parents=True)
            except Exception as e:  # noqa: BLE001 - keep cleaning the rest
                print(f"cleanup: destroy {cg.path}: {e}")
        for c in self.children:
            if c.status is None:
                try:
                    c.wait(10)
                except (TimeoutError, ChildProcessError):
                    pass


@pytest.fixture
def lab(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    lab = Lab(Paths(root=str(tmp_path / "root")).cgroup_parent)
    try:
        yield lab
    finally:
        lab.cleanup()


v2_only = pytest.mark.skipif(not is_v2_host(), reason="needs a pure cgroup v2 host (VM lane)")
v1_only = pytest.mark.skipif(is_v2_host(), reason="cgroup v1 host only")
