"""Inside the VM lane guest only: the guest must be pure cgroup v2, nsbox must come from the shared repo.
Skipped outside the lane (NSBOX_VM_LANE=1 is set by the lane's guest init)."""
import os
import subprocess

import pytest

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(os.environ.get("NSBOX_VM_LANE") != "1", reason="only inside the VM lane guest")]


def test_pure_cgroup_v2():
    fstypes = [l.split()[2] for l in open("/proc/mounts") if l.split()[1] == "/sys/fs/cgroup"]
    assert fstypes == ["cgroup2"]
    assert not [l for l in open("/proc/mounts") if l.split()[2] == "cgroup"], "a v1 hierarchy is mounted"
    rows = [l.split() for l in open("/proc/cgroups") if not l.startswith("#")]
    assert all(r[1] == "0" for r in rows), rows
    ctrls = open("/sys/fs/cgroup/cgroup.controllers").read().split()
    assert {"cpu", "memory", "io", "pids"} <= set(ctrls), ctrls
    with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
        f.write("+cpu +memory +io +pids")
    assert {"cpu", "memory", "io", "pids"} <= set(open("/sys/fs/cgroup/cgroup.subtree_control").read().split())
    assert "cgroup_no_v1=all" in open("/proc/cmdline").read()


def test_lane_check_script_agrees():
    r = subprocess.run(["sh", os.path.join(REPO, "vagrant/vm-lane/check-cgroup-v2.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert "OK, pure cgroup v2" in r.stdout


def test_nsbox_comes_from_the_shared_repo():
    import nsbox.runtime
    assert os.path.realpath(nsbox.runtime.__file__).startswith(REPO + "/")
    assert os.path.realpath("/usr/local/bin/nsbox") == "/opt/nsbox/venv/bin/nsbox"


def test_lane_check_script_fails_loudly_with_a_v1_hierarchy(tmp_path):
    subprocess.run(["mount", "-t", "cgroup", "-o", "none,name=nsboxlanecheck", "cgroup", str(tmp_path)], check=True)
    try:
        r = subprocess.run(["sh", os.path.join(REPO, "vagrant/vm-lane/check-cgroup-v2.sh")],
                           capture_output=True, text=True)
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)
    assert r.returncode == 1
    assert f"FAIL: cgroup v1 hierarchies mounted: {tmp_path}" in r.stdout and "NOT pure cgroup v2" in r.stdout
