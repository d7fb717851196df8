"""The cgroup v2 eBPF device filter. On this hybrid host it is attached to a cgroup in the
controller-less cgroup2 mount (BPF device programs are part of the cgroup2 core, so they are
enforced there too); on a pure v2 host it uses /sys/fs/cgroup."""
from __future__ import annotations

import os
import stat

import pytest

from nsbox.runtime.cgroups import DeviceRule, Resources, default_device_rules
from nsbox.runtime.cgroups import bpf
from nsbox.runtime.cgroups.v1 import UNIFIED, _mounts
from nsbox.runtime.cgroups.v2 import V2Driver
from nsbox.runtime.paths import Paths

pytestmark = [pytest.mark.vm]


def test_assemble_shape():
    prog = bpf.assemble(default_device_rules())
    assert len(prog) % 8 == 0
    # default deny: last two instructions are r0 = 0; exit
    assert prog[-16:] == bpf.insn(bpf.MOV64_K, 0, imm=0) + bpf.insn(bpf.EXIT)
    assert bpf.assemble([DeviceRule(True, "a")])[-16:-8] == bpf.insn(bpf.MOV64_K, 0, imm=1)


def _cg2_mount() -> str | None:
    m = _mounts().get(UNIFIED)
    return m


@pytest.fixture
def cg2(tmp_path):
    mount = _cg2_mount()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("needs root and a cgroup2 mount")
    drv = V2Driver(mount=mount)
    made = []

    def make(rules):
        cg = drv.create(f"{Paths(root=str(tmp_path)).cgroup_parent}/dev{len(made)}", Resources(devices=rules))
        made.append(cg)
        return cg
    yield make
    for cg in made:
        cg.destroy(remove_empty_parents=True)


def _probe(cg, tmp_path) -> dict[str, int]:
    """Fork a child into cg; report errno (0 = ok) of each device operation."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = []
        try:
            cg.join_self()
            for name, fn in [
                ("null", lambda: open("/dev/null", "w").write("x")),
                ("zero", lambda: open("/dev/zero", "rb").read(1)),
                ("mknod_b", lambda: os.mknod(str(tmp_path / "b"), stat.S_IFBLK | 0o600, os.makedev(254, 0))),
                ("mknod_c", lambda: os.mknod(str(tmp_path / "c"), stat.S_IFCHR | 0o600, os.makedev(1, 3))),
            ]:
                try:
                    fn()
                    out.append(f"{name}=0")
                except OSError as e:
                    out.append(f"{name}={e.errno}")
        finally:
            os.write(w, " ".join(out).encode())
            os._exit(0)
    os.close(w)
    data = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return {k: int(v) for k, v in (x.split("=") for x in data.split())}


def test_default_rules_block_block_devices(cg2, tmp_path):
    cg = cg2(default_device_rules())
    assert not [w for w in cg.warnings if "device" in w], cg.warnings
    res = _probe(cg, tmp_path)
    assert res == {"null": 0, "zero": 0, "mknod_b": 1, "mknod_c": 0}


def test_later_deny_overrides_earlier_allow(cg2, tmp_path):
    cg = cg2(default_device_rules() + [DeviceRule(False, "c", 1, 3, "rw")])
    res = _probe(cg, tmp_path)
    assert res["null"] == 1 and res["zero"] == 0 and res["mknod_c"] == 0
