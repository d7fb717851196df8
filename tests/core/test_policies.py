"""Restart policies with counted restarts, --rm without a CLI, and the monitor's survival."""
import json
import os
import signal
import subprocess
import time

import pytest

from nsbox_testlib import wait_for

pytestmark = pytest.mark.vm
NONE = ("--network", "none")


def test_on_failure_counts_restarts(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "--restart", "on-failure:3", "busybox", "sh", "-c", "exit 2").strip()
    assert wait_for(lambda: nsbox.inspect(cid)["State"]["Status"] == "exited"
                    and nsbox.inspect(cid)["RestartCount"] == 3, timeout=60)
    assert nsbox.inspect(cid)["State"]["ExitCode"] == 2
    assert nsbox.ok("logs", cid) == ""


def test_on_failure_not_on_success(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "--restart", "on-failure", "busybox", "true").strip()
    nsbox.ok("wait", cid)
    assert nsbox.inspect(cid)["RestartCount"] == 0


def test_always_restarts_until_stopped(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "--restart", "always", "busybox", "sh", "-c", "echo run; sleep 0.1").strip()
    assert wait_for(lambda: nsbox.inspect(cid)["RestartCount"] >= 2, timeout=60)
    nsbox.ok("stop", "-t", "1", cid)
    st = nsbox.inspect(cid)["State"]
    assert st["Status"] == "exited"
    n = nsbox.inspect(cid)["RestartCount"]
    time.sleep(1)
    assert nsbox.inspect(cid)["RestartCount"] == n  # stopped means stopped
    assert nsbox.ok("logs", cid).count("run") >= 2


def test_restart_and_rm_conflict(nsbox):
    r = nsbox("run", "--rm", "--restart", "always", *NONE, "busybox", "true")
    assert r.returncode == 125 and "conflicting options" in r.stderr
    r = nsbox("run", "--restart", "sometimes", *NONE, "busybox", "true")
    assert r.returncode == 125


def test_rm_happens_after_the_cli_is_killed(nsbox, tmp_path):
    # it runs until the test says so (no race with a short sleep on a slow machine)
    p = nsbox.popen("run", "--rm", "--name", "orphan", *NONE, "-v", f"{tmp_path}:/x", "busybox",
                    "sh", "-c", "while [ ! -e /x/go ]; do sleep 0.05; done",
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: nsbox("inspect", "orphan").returncode == 0
                    and nsbox.inspect("orphan")["State"]["Status"] == "running", timeout=60)
    p.kill()
    p.wait()
    assert nsbox.inspect("orphan")["State"]["Status"] == "running"
    (tmp_path / "go").touch()  # now it exits on its own, with no CLI around
    assert wait_for(lambda: nsbox("inspect", "orphan").returncode != 0, timeout=60)


def test_container_survives_its_cli(nsbox):
    p = nsbox.popen("run", "--name", "keeps", *NONE, "busybox", "sleep", "300",
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: nsbox("inspect", "keeps").returncode == 0
                    and nsbox.inspect("keeps")["State"]["Running"])
    p.kill()
    p.wait()
    time.sleep(0.3)
    assert nsbox.inspect("keeps")["State"]["Status"] == "running"


def _monitor_pid(nsbox, cid):
    with open(os.path.join(nsbox.root, "containers", cid, "state.json")) as f:
        return json.load(f)["MonitorPid"]


def test_truth_after_monitor_kill_9(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "300").strip()
    mon = _monitor_pid(nsbox, cid)
    pid1 = nsbox.inspect(cid)["State"]["Pid"]
    os.kill(mon, signal.SIGKILL)
    # PID 1 lives on: still running, truthfully
    assert nsbox.inspect(cid)["State"]["Status"] == "running"
    os.kill(pid1, signal.SIGKILL)
    assert wait_for(lambda: nsbox.inspect(cid)["State"]["Status"] == "exited")
    assert nsbox.ok("ps", "-q") == ""
    nsbox.ok("rm", cid)


@pytest.mark.parametrize("verb", ["pause", "unpause"])
def test_pause_after_monitor_and_pid1_killed_says_not_running(nsbox, verb):
    """pause/unpause reconcile a container whose monitor and PID 1 died unrecorded; the
    reconciliation takes the state lock itself, so it must not run under the verb's own lock
    (that was a self-deadlock: a hang, here cut by the subprocess timeout)."""
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "300").strip()
    if verb == "unpause":
        nsbox.ok("pause", cid)
    from nsbox.runtime.state import alive
    with open(os.path.join(nsbox.root, "containers", cid, "state.json")) as f:
        st = json.load(f)
    mon, pid1, start = st["MonitorPid"], st["Pid"], st["PidStart"]
    os.kill(mon, signal.SIGKILL)
    os.kill(pid1, signal.SIGKILL)
    if verb == "unpause":  # v1: a frozen task dies once thawed (v2 lets SIGKILL through: then it
        nsbox("kill", cid)  # may be found dead already, and kill says "not running")
    # reaped, not just a zombie (a zombie still counts as alive, and then nothing needs reconciling)
    assert wait_for(lambda: not alive(pid1, start), timeout=60)
    r = nsbox(verb, cid, timeout=90)
    assert r.returncode != 0 and "not" in r.stderr, r.stderr
    assert nsbox.inspect(cid)["State"]["Status"] == "exited"
    nsbox.ok("rm", "-f", cid)


def test_rm_container_after_monitor_and_pid1_killed(nsbox):
    cid = nsbox.ok("run", "-d", "--rm", *NONE, "busybox", "sleep", "300").strip()
    mon = _monitor_pid(nsbox, cid)
    pid1 = nsbox.inspect(cid)["State"]["Pid"]
    os.kill(mon, signal.SIGKILL)
    os.kill(pid1, signal.SIGKILL)
    # reconciliation records the exit and honours --rm
    assert wait_for(lambda: nsbox("inspect", cid).returncode != 0 or nsbox.ok("ps", "-aq") == "")
