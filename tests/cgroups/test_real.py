"""Real-kernel behaviour of whichever driver this host has (v1 here, v2 in the VM lane)."""
from __future__ import annotations

import errno
import os
import signal
import time

import pytest
from nsbox_testlib import wait_for

from nsbox.runtime import units
from nsbox.runtime.cgroups import Resources, default_device_rules
from nsbox.runtime.cgroups.blockdev import scheduler
from nsbox.runtime.cgroups.files import read, read_kv

from .conftest import root_disk, root_disk_path, v1_only, v2_only

pytestmark = [pytest.mark.vm]

BUSY = "import time\nt=time.time()\nwhile time.time()-t<600: pass"
SLEEP = "import time\ntime.sleep(600)"


def knob(cg, ctrl_v1: str, name_v1: str, name_v2: str) -> str:
    if cg.version == 1:
        return read(os.path.join(cg.ctrl_dirs[ctrl_v1], name_v1))
    return read(os.path.join(cg.dir, name_v2))


def test_flags_land_in_the_right_files(lab):
    maj, mnr = root_disk()
    dev = root_disk_path()
    flags = dict(memory="64m", memory_swap="128m", memory_reservation="32m", cpus="0.5",
                 cpu_shares="512", cpuset_cpus="0", pids_limit="50")
    if dev:
        flags.update(device_write_bps=[f"{dev}:2mb"], device_read_iops=[f"{dev}:100"])
    res, warns = units.resources_from_flags(**flags)
    assert warns == []
    cg = lab.create("knobs", res)
    assert knob(cg, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert knob(cg, "pids", "pids.max", "pids.max") == "50"
    assert knob(cg, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    if cg.version == 1:
        assert knob(cg, "memory", "memory.memsw.limit_in_bytes", "") == str(128 << 20)
        assert knob(cg, "memory", "memory.soft_limit_in_bytes", "") == str(32 << 20)
        assert knob(cg, "cpu", "cpu.cfs_quota_us", "") == "50000"
        assert knob(cg, "cpu", "cpu.cfs_period_us", "") == "100000"
        assert knob(cg, "cpu", "cpu.shares", "") == "512"
        if dev:
            assert f"{maj}:{mnr} {2 << 20}" in knob(cg, "blkio", "blkio.throttle.write_bps_device", "")
            assert f"{maj}:{mnr} 100" in knob(cg, "blkio", "blkio.throttle.read_iops_device", "")
        dl = knob(cg, "devices", "devices.list", "").splitlines()
        assert "a *:* rwm" not in dl and "c 1:3 rwm" in dl and "c 136:* rwm" in dl
    else:
        if os.path.exists(os.path.join(cg.dir, "memory.swap.max")):
            assert knob(cg, "", "", "memory.swap.max") == str(64 << 20)   # 128m total - 64m memory
        assert knob(cg, "", "", "memory.low") == str(32 << 20)
        assert knob(cg, "", "", "cpu.max") == "50000 100000"
        assert knob(cg, "", "", "cpu.weight") == str(1 + (510 * 9999) // 262142)
        if dev:
            line = [ln for ln in knob(cg, "", "", "io.max").splitlines() if ln.startswith(f"{maj}:{mnr} ")]
            assert line and f"wbps={2 << 20}" in line[0] and "riops=100" in line[0]


def test_join_self_covers_children_forked_later(lab):
    cg = lab.create()
    child = lab.spawn(cg, ["/bin/busybox", "sh", "-c", "sleep 600 & sleep 600 & wait"])
    for _ in range(200):
        if len(cg.pids()) >= 3:
            break
        time.sleep(0.02)
    assert child.pid in cg.pids() and len(cg.pids()) >= 3
    for d in cg.dirs():
        assert child.pid in [int(x) for x in read(os.path.join(d, "cgroup.procs")).split()]


def test_memory_limit_oom_kills(lab):
    res, _ = units.resources_from_flags(memory="32m", memory_swap="32m")
    cg = lab.create("oom", res)
    assert not cg.oom_killed()
    child = lab.python(cg, "b=[]\nwhile True: b.append(bytearray(1<<20))")
    st = child.wait()
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL
    assert cg.oom_killed()


def test_clean_exit_is_not_oom(lab):
    res, _ = units.resources_from_flags(memory="64m")
    cg = lab.create("ok", res)
    assert os.waitstatus_to_exitcode(lab.python(cg, "x=bytearray(1<<20)").wait()) == 0
    assert not cg.oom_killed()


def test_pids_limit_stops_fork_loop(lab, tmp_path):
    res, _ = units.resources_from_flags(pids_limit="5")
    cg = lab.create("pids", res)
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    # the children live until the parent is done forking (they wait for the pipe to close): a
    # slow machine cannot let one exit early and free a pid for another fork
    code = ("import os\nkids, err = [], None\nr, w = os.pipe()\n"
            "for i in range(20):\n"
            "    try:\n        k = os.fork()\n    except OSError as e:\n        err = e.errno; break\n"
            "    if k == 0:\n        os.close(w); os.read(r, 1); os._exit(0)\n    kids.append(k)\n"
            "print(len(kids), err, flush=True)\n"
            "os.close(w)\n"
            "for k in kids: os.waitpid(k, 0)\n")
    child = lab.python(cg, code, stdout=out)
    os.close(out)
    assert os.waitstatus_to_exitcode(child.wait()) == 0
    n, err = (tmp_path / "out").read_text().split()
    assert int(n) == 4 and int(err) == errno.EAGAIN
    d = cg.ctrl_dirs["pids"] if cg.version == 1 else cg.dir
    assert read_kv(os.path.join(d, "pids.events"))["max"] >= 1


def test_cpu_quota_throttles(lab):
    res, _ = units.resources_from_flags(cpus="0.1")
    cg = lab.create("cpu", res)
    child = lab.python(cg, "import time\nt=time.time()\nwhile time.time()-t<1: pass")
    child.wait()
    s = cg.stats()
    assert s["cpu_throttled_periods"] > 0
    assert s["cpu_usage_ns"] > 0


def test_device_write_bps_throttles_direct_io(lab, tmp_path):
    dev = root_disk_path()
    if dev is None:
        pytest.skip("no device node for the root disk")
    res, _ = units.resources_from_flags(device_write_bps=[f"{dev}:1mb"])
    cg = lab.create("io", res)
    # on the root disk itself: /tmp may be a tmpfs (it is in the VM lane), where nothing reaches a device
    import tempfile
    ddir = tempfile.mkdtemp(prefix="nsbox-io-", dir="/var/tmp")
    assert os.stat(ddir).st_dev == os.stat("/").st_dev
    target = os.path.join(ddir, "direct.bin")
    code = ("import mmap, os, time\n"
            f"fd = os.open({target!r}, os.O_WRONLY|os.O_CREAT|os.O_DIRECT, 0o600)\n"
            "buf = mmap.mmap(-1, 1<<20)\nbuf.write(b'x'*(1<<20))\n"
            "for _ in range(3): os.write(fd, buf)\nos.close(fd)\n")
    try:
        assert os.waitstatus_to_exitcode(lab.python(cg, code).wait()) == 0
    finally:
        import shutil
        shutil.rmtree(ddir, ignore_errors=True)
    # the counters prove the writes went to the device through this cgroup (and its throttle);
    # tests/resources shows the slowdown itself with counters sampled mid-write
    assert cg.stats()["blkio_write_bytes"] >= 3 << 20


def _utime(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[11])


def test_freeze_and_thaw(lab):
    cg = lab.create()
    child = lab.python(cg, BUSY)
    cg.freeze()
    assert cg.is_frozen()
    u1 = _utime(child.pid)
    time.sleep(0.5)  # a frozen task accrues nothing, however long we look
    assert _utime(child.pid) == u1
    cg.thaw()
    assert not cg.is_frozen()
    assert wait_for(lambda: _utime(child.pid) > u1, timeout=60)  # it runs again (when it gets a CPU)


def test_kill_all_kills_the_tree(lab):
    cg = lab.create()
    child = lab.spawn(cg, ["/bin/busybox", "sh", "-c", "sleep 600 & sleep 600 & wait"])
    for _ in range(200):
        if len(cg.pids()) >= 3:
            break
        time.sleep(0.02)
    cg.kill_all()
    assert cg.pids() == []
    st = child.wait(10)
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL


def test_kill_all_works_on_a_frozen_cgroup(lab):
    cg = lab.create()
    child = lab.python(cg, SLEEP)
    cg.freeze()
    cg.destroy()
    assert os.WTERMSIG(child.wait(10)) == signal.SIGKILL
    assert not cg.exists()


def _leftovers(parent: str) -> list[str]:
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root) == parent:
            found.append(root)
        if root.count("/") > 5:
            dirs[:] = []
    return found


def test_destroy_leaves_nothing_and_is_idempotent(lab):
    cg = lab.create("pod-x/ctr")
    lab.python(cg, SLEEP)
    cg.destroy()
    assert not cg.exists()
    assert _leftovers(lab.parent)  # pod parent kept unless asked
    cg.destroy(remove_empty_parents=True)
    cg.destroy(remove_empty_parents=True)
    assert _leftovers(lab.parent) == []


def test_destroy_keeps_a_nonempty_pod_parent(lab):
    a = lab.create("pod-y/a")
    b = lab.create("pod-y/b")
    a.destroy(remove_empty_parents=True)
    assert b.exists()
    b.destroy(remove_empty_parents=True)
    assert _leftovers(lab.parent) == []


def test_update_live_raise_then_lower(lab):
    res, _ = units.resources_from_flags(memory="64m", memory_swap="64m", cpus="0.5")
    cg = lab.create("upd", res)
    lab.python(cg, SLEEP)
    up, _ = units.resources_from_flags(memory="256m", memory_swap="512m", cpus="1", pids_limit="30")
    assert cg.update(up) == []
    down, _ = units.resources_from_flags(memory="32m", memory_swap="48m")
    assert cg.update(down) == []
    assert knob(cg, "memory", "memory.limit_in_bytes", "memory.max") == str(32 << 20)
    assert knob(cg, "pids", "pids.max", "pids.max") == "30"
    if cg.version == 1:
        assert knob(cg, "memory", "memory.memsw.limit_in_bytes", "") == str(48 << 20)
        assert knob(cg, "cpu", "cpu.cfs_quota_us", "") == "100000"
    else:
        if os.path.exists(os.path.join(cg.dir, "memory.swap.max")):
            assert knob(cg, "", "", "memory.swap.max") == str(16 << 20)
        assert knob(cg, "", "", "cpu.max") == "100000 100000"
    assert cg.pids()


def test_stats_move_when_the_child_works(lab):
    res, _ = units.resources_from_flags(memory="256m", pids_limit="20")
    cg = lab.create("stats", res)
    before = cg.stats()
    lab.python(cg, "import time\nb=bytearray(40<<20)\nfor i in range(0, len(b), 4096): b[i]=1\n"
                   "t=time.process_time()\nwhile time.process_time()-t<0.5: pass\ntime.sleep(600)")
    s = before
    for _ in range(1200):  # bounded, and long enough for a loaded machine
        s = cg.stats()
        if s["memory_usage"] > 30 << 20 and s["cpu_usage_ns"] > 300_000_000:
            break
        time.sleep(0.05)
    assert s["cpu_usage_ns"] > before["cpu_usage_ns"]
    assert s["memory_usage"] > 30 << 20
    assert s["memory_limit"] == 256 << 20
    assert s["pids_current"] >= 1 and s["pids_limit"] == 20


def test_unsupported_weights_warn(lab):
    dev = root_disk_path()
    maj, mnr = root_disk()
    flags = {"blkio_weight": "500"}
    if dev:
        flags["blkio_weight_device"] = [f"{dev}:300"]
    res, _ = units.resources_from_flags(**flags)
    cg = lab.create("w", res)
    if scheduler(maj, mnr) != "bfq":
        assert any("weight" in w for w in cg.warnings), cg.warnings
        assert all("\n" not in w for w in cg.warnings)


def test_default_device_allowlist_blocks_block_mknod(lab, tmp_path):
    cg = lab.create("dev", Resources(devices=default_device_rules()))
    if cg.version == 2 and any("device" in w for w in cg.warnings):
        pytest.fail(f"device filter not attached: {cg.warnings}")
    node = str(tmp_path / "blk")
    code = ("import os, stat, sys\n"
            "open('/dev/null','w').write('x'); open('/dev/zero','rb').read(1)\n"
            f"try:\n    os.mknod({node!r}, stat.S_IFBLK|0o600, os.makedev(254, 0))\n"
            "except PermissionError:\n    sys.exit(0)\nsys.exit(3)\n")
    assert os.waitstatus_to_exitcode(lab.python(cg, code).wait()) == 0


@v1_only
def test_v1_kill_fallback_without_unified_mirror(lab):
    """freeze -> SIGKILL each -> thaw, the path for v1 hosts with no cgroup2 mount."""
    from nsbox.runtime.cgroups.v1 import UNIFIED, V1Driver
    drv = V1Driver({k: v for k, v in lab.driver.mounts.items() if k != UNIFIED})
    cg = drv.create(f"{lab.parent}/nomirror")
    lab.cgroups.append(cg)
    child = lab.spawn(cg, ["/bin/busybox", "sh", "-c", "sleep 600 & sleep 600 & wait"])
    for _ in range(200):
        if len(cg.pids()) >= 3:
            break
        time.sleep(0.02)
    assert not cg._kill_native()
    cg.kill_all()
    assert cg.pids() == [] and not cg.is_frozen()
    assert os.WTERMSIG(child.wait(10)) == signal.SIGKILL


@v1_only
def test_v1_memsw_ordering_is_needed(lab):
    """The kernel really rejects memsw < limit: the ordering in update() is not decorative."""
    from nsbox.runtime.cgroups.files import write
    res, _ = units.resources_from_flags(memory="64m", memory_swap="64m")
    cg = lab.create("order", res)
    with pytest.raises(OSError) as ei:
        write(os.path.join(cg.ctrl_dirs["memory"], "memory.limit_in_bytes"), 128 << 20)
    assert ei.value.errno == errno.EINVAL


@v2_only
def test_v2_parents_delegate_controllers(lab):
    res, _ = units.resources_from_flags(memory="64m")
    res.memory.oom_group = True
    cg = lab.create("pod-z/ctr", res)
    for parent in ("/sys/fs/cgroup", f"/sys/fs/cgroup/{lab.parent}", f"/sys/fs/cgroup/{lab.parent}/pod-z"):
        enabled = read(os.path.join(parent, "cgroup.subtree_control")).split()
        assert {"cpu", "memory", "pids"} <= set(enabled), (parent, enabled)
    assert read(os.path.join(cg.dir, "memory.oom.group")) == "1"
    assert read(os.path.join(cg.dir, "cgroup.type")) == "domain"
