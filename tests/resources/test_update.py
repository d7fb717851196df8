"""`nsbox update` on running and stopped containers, through the real CLI."""
from __future__ import annotations

import pytest

from nsbox_testlib import wait_for
from ._helpers import cgroup_of, cid_of, hog, cpu_quota, memory_limit, pids_max

NET = ("--network", "none")
MiB = 1 << 20


@pytest.mark.vm
def test_update_running_memory_up_and_down(nsbox, paths):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "-m", "48m", "busybox", "sleep", "300"))
    cg = cgroup_of(paths, cid)
    assert memory_limit(cg) == 48 * MiB
    assert nsbox("exec", cid, *hog(32)).returncode == 137    # a 32 MiB string peaks above 48m
    r = nsbox("update", "-m", "160m", cid)
    assert r.returncode == 0 and r.stdout.strip() == cid, r.stderr
    assert memory_limit(cg) == 160 * MiB
    r = nsbox("exec", cid, *hog(32))                           # fits now
    assert r.returncode == 0 and f"hog: {32 << 20} bytes" in r.stdout
    nsbox.ok("update", "--memory", "24m", cid)
    assert memory_limit(cg) == 24 * MiB
    assert nsbox("exec", cid, *hog(32)).returncode == 137    # the lowered limit bites at once
    hc = nsbox.inspect(cid)["HostConfig"]
    assert hc["Resources"]["memory"] == "24m"
    from nsbox.runtime.state import ContainerRecord
    assert ContainerRecord(paths, cid).config()["Spec"]["linux"]["resources"]["memory"]["limit"] == 24 * MiB
    assert nsbox.inspect(cid)["State"]["Status"] == "running"


@pytest.mark.vm
def test_update_running_pids_and_cpus(nsbox, paths):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "--pids-limit", "50", "busybox", "sleep", "300"))
    cg = cgroup_of(paths, cid)
    assert pids_max(cg) == "50"
    nsbox.ok("update", "--pids-limit", "3", "--cpus", "0.25", cid)
    assert pids_max(cg) == "3" and cpu_quota(cg) == 25000
    r = nsbox("exec", cid, "sh", "-c", "sleep 30 & sleep 30 & sleep 30 & echo forked")
    assert "forked" not in r.stdout and "can't fork" in r.stderr
    nsbox.ok("update", "--pids-limit", "-1", "--cpus", "0", cid)
    assert pids_max(cg) == "max" and cpu_quota(cg) is None
    assert nsbox("exec", cid, "sh", "-c", "sleep 1 & sleep 1 & sleep 1 & wait; echo forked").stdout.strip() == "forked"


@pytest.mark.vm
def test_update_stopped_container_applies_at_next_start(nsbox, paths):
    cid = cid_of(nsbox.ok("create", *NET, "-m", "64m", "busybox", "sleep", "300"))
    r = nsbox("update", "-m", "96m", "--pids-limit", "7", "--cpus", "0.5", cid)
    assert r.returncode == 0, r.stderr
    assert nsbox.inspect(cid)["HostConfig"]["Resources"] == {"memory": "96m", "pids_limit": "7", "cpus": "0.5"}
    nsbox.ok("start", cid)
    cg = cgroup_of(paths, cid)
    assert memory_limit(cg) == 96 * MiB and pids_max(cg) == "7" and cpu_quota(cg) == 50000


@pytest.mark.vm
def test_update_paused_container(nsbox, paths):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "busybox", "sleep", "300"))
    nsbox.ok("pause", cid)
    nsbox.ok("update", "--pids-limit", "9", cid)
    assert pids_max(cgroup_of(paths, cid)) == "9"
    nsbox.ok("unpause", cid)


@pytest.mark.vm
def test_update_restart_policy(nsbox):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "busybox", "sleep", "300"))
    nsbox.ok("update", "--restart", "on-failure:3", cid)
    assert nsbox.inspect(cid)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    rm = cid_of(nsbox.ok("run", "-d", "--rm", *NET, "busybox", "sleep", "300"))
    r = nsbox("update", "--restart", "always", rm)
    assert r.returncode == 1 and "AutoRemove" in r.stderr


@pytest.mark.vm
def test_update_restart_policy_reaches_the_running_monitor(nsbox):
    """A policy set while the container runs is the one applied when it exits."""
    cid = cid_of(nsbox.ok("run", "-d", *NET, "busybox", "sh", "-c",
                          "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3"))
    nsbox.ok("update", "--restart", "on-failure:1", cid)
    nsbox.ok("exec", cid, "touch", "/tmp/go")   # now PID 1 fails, and fails again after one restart
    assert wait_for(lambda: nsbox.inspect(cid)["RestartCount"] == 1, timeout=30)
    assert wait_for(lambda: nsbox.inspect(cid)["State"]["Status"] == "exited", timeout=30)
    assert nsbox.inspect(cid)["State"]["ExitCode"] == 3


@pytest.mark.vm
@pytest.mark.parametrize("flag, msg", [
    (("-m", "abc"), 'invalid argument "abc" for "--memory" flag'),
    (("--cpus", "-1"), "Range of CPUs is from 0.01"),
    (("--cpuset-cpus", "99"), "Requested CPUs are not available"),
    (("--blkio-weight", "5"), "Range of blkio weight"),
    (("--restart", "sometimes"), "invalid restart policy"),
])
def test_update_bad_values(nsbox, flag, msg):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "-m", "64m", "busybox", "sleep", "300"))
    before = nsbox.inspect(cid)["HostConfig"]
    r = nsbox("update", *flag, cid)
    assert r.returncode == 125 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr
    assert nsbox.inspect(cid)["HostConfig"] == before


@pytest.mark.vm
def test_update_errors_per_container(nsbox):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "--cpus", "0.5", "busybox", "sleep", "300"))
    r = nsbox("update", "--pids-limit", "30", "nosuch", cid)
    assert r.returncode == 1 and r.stdout.strip() == cid and "No such container: nosuch" in r.stderr
    r = nsbox("update", "--cpu-quota", "20000", cid)
    assert r.returncode == 1 and "Nano CPUs has already been set" in r.stderr
    assert nsbox("update", cid).returncode == 125   # no flags at all


def test_update_below_usage_is_refused_and_changes_nothing(nsbox, paths):
    from nsbox.runtime.cgroups import get_driver
    if get_driver().version != 1:
        pytest.skip("v2 memory.max accepts any value and reclaims or OOM-kills instead")
    cid = cid_of(nsbox.ok("run", "-d", *NET, "-m", "128m", "--pids-limit", "50", "--tmpfs", "/t",
                          "busybox", "sleep", "300"))
    nsbox.ok("exec", cid, "dd", "if=/dev/zero", "of=/t/f", "bs=1M", "count=48")   # unreclaimable (no swap)
    r = nsbox("update", "-m", "16m", "--pids-limit", "20", cid)
    assert r.returncode == 1 and "memory limit" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    cg = cgroup_of(paths, cid)
    assert memory_limit(cg) == 128 * MiB and pids_max(cg) == "50"
    assert nsbox.inspect(cid)["HostConfig"]["Resources"] == {"memory": "128m", "pids_limit": "50"}
    assert nsbox.inspect(cid)["State"]["Status"] == "running"
