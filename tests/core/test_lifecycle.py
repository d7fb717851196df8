"""States and transitions: created -> running <-> paused, running -> exited, removal."""
import pytest

from nsbox_testlib import wait_for

pytestmark = pytest.mark.vm
NONE = ("--network", "none")


def state(nsbox, ref):
    return nsbox.inspect(ref)["State"]


def test_full_lifecycle(nsbox):
    cid = nsbox.ok("create", "--name", "lc", *NONE, "busybox", "sleep", "300").strip()
    assert state(nsbox, cid)["Status"] == "created"
    assert nsbox.ok("start", "lc").strip() == "lc"
    st = state(nsbox, cid)
    assert st["Status"] == "running" and st["Pid"] > 0
    nsbox.ok("pause", "lc")
    assert state(nsbox, cid)["Status"] == "paused"
    r = nsbox("pause", "lc")
    assert r.returncode == 1 and "already paused" in r.stderr
    r = nsbox("exec", "lc", "true")
    assert r.returncode == 125 and "paused" in r.stderr
    nsbox.ok("unpause", "lc")
    assert state(nsbox, cid)["Status"] == "running"
    r = nsbox("rm", "lc")
    assert r.returncode == 1 and "stop the container before removing" in r.stderr
    nsbox.ok("stop", "-t", "1", "lc")
    st = state(nsbox, cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and st["Pid"] == 0
    r = nsbox("unpause", "lc")
    assert r.returncode == 1
    nsbox.ok("restart", "-t", "1", "lc")
    assert state(nsbox, cid)["Status"] == "running"
    nsbox.ok("rm", "-f", "lc")
    assert nsbox("inspect", "lc").returncode == 1


def test_stop_uses_stop_signal_and_timeout(nsbox):
    # a shell that exits 0 on USR1: stop with that signal must not need SIGKILL
    cid = nsbox.ok("run", "-d", *NONE, "--stop-signal", "USR1", "busybox", "sh", "-c",
                   "trap 'exit 0' USR1; while true; do sleep 0.1; done").strip()
    nsbox.ok("stop", cid)
    assert state(nsbox, cid)["ExitCode"] == 0


def test_stop_of_stopped_is_ok_and_kill_of_stopped_fails(nsbox):
    cid = nsbox.ok("create", *NONE, "busybox", "true").strip()
    assert nsbox("stop", cid).returncode == 0
    r = nsbox("kill", cid)
    assert r.returncode == 1 and "is not running" in r.stderr


def test_rm_force_kills_at_once(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "300").strip()
    nsbox.ok("rm", "-f", cid)
    assert nsbox.ok("ps", "-aq") == ""


def test_wait_prints_exit_code(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sh", "-c", "sleep 0.3; exit 4").strip()
    assert nsbox.ok("wait", cid).strip() == "4"


def test_rename(nsbox):
    nsbox.ok("create", "--name", "old", *NONE, "busybox", "true")
    nsbox.ok("create", "--name", "taken", *NONE, "busybox", "true")
    assert nsbox("rename", "old", "taken").returncode == 125
    nsbox.ok("rename", "old", "new")
    assert nsbox.inspect("new")["Name"] == "/new"
    assert nsbox("inspect", "old").returncode == 1
    nsbox.ok("create", "--name", "old", *NONE, "busybox", "true")  # the old name is free again


def test_name_in_use_is_125_and_leaves_nothing(nsbox):
    nsbox.ok("create", "--name", "dup", *NONE, "busybox", "true")
    r = nsbox("create", "--name", "dup", *NONE, "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    assert len(nsbox.ok("ps", "-aq").split()) == 1


def test_ps_filters_and_format(nsbox):
    nsbox.ok("run", "-d", "--name", "up1", "-l", "k=v", *NONE, "busybox", "sleep", "300")
    nsbox.ok("create", "--name", "made", *NONE, "busybox", "true")
    assert nsbox.ok("ps", "--format", "{{.Names}}").split() == ["up1"]
    assert sorted(nsbox.ok("ps", "-a", "--format", "{{.Names}} {{.State}}").splitlines()) == [
        "made created", "up1 running"]
    assert nsbox.ok("ps", "-a", "--filter", "label=k=v", "--format", "{{.Names}}").split() == ["up1"]
    assert nsbox.ok("ps", "-a", "-f", "status=created", "-q") .strip() != ""
    lines = nsbox.ok("ps", "-a").splitlines()
    assert lines[0].split()[:2] == ["CONTAINER", "ID"] and len(lines) == 3
    import json
    rows = [json.loads(line) for line in nsbox.ok("ps", "-a", "--format", "json").splitlines()]
    assert {r["Names"] for r in rows} == {"up1", "made"}
    assert nsbox("ps", "--filter", "bogus").returncode == 125


def test_container_prune(nsbox):
    nsbox.ok("run", "-d", "--name", "keep", *NONE, "busybox", "sleep", "300")
    nsbox.ok("create", "--name", "gone", *NONE, "busybox", "true")
    out = nsbox.ok("container", "prune", "-f")
    assert "Deleted Containers" in out
    assert nsbox.ok("ps", "-a", "--format", "{{.Names}}").split() == ["keep"]


def test_top(nsbox):
    nsbox.ok("run", "-d", "--name", "t", *NONE, "busybox", "sleep", "300")
    out = nsbox.ok("top", "t")
    assert "PID" in out.splitlines()[0] and "sleep 300" in out


def test_port_is_empty_without_network(nsbox):
    nsbox.ok("run", "-d", "--name", "p", *NONE, "busybox", "sleep", "300")
    assert nsbox.ok("port", "p") == ""


def test_run_rm_deletes_files_after_answering_and_sweeps_leftovers(nsbox, paths):
    import os
    import time
    # --rm: the record is gone when run returns; its files follow right after
    nsbox.ok("run", "--rm", "--network", "none", "--name", "rmfiles", "busybox", "sh", "-c", "echo x > /f")
    assert "rmfiles" not in nsbox.ok("ps", "-a", "--format", "{{.Names}}")
    assert wait_for(lambda: not [e for e in os.listdir(paths.containers) if e.startswith(".removed-")])
    # a monitor killed between the two steps leaves a trash directory: listing sweeps it (after a minute)
    trash = os.path.join(paths.containers, ".removed-" + "0" * 64)
    os.makedirs(os.path.join(trash, "upper", "deep"))
    old = time.time() - 120
    os.utime(trash, (old, old))
    nsbox.ok("ps", "-a")
    assert not os.path.exists(trash)


@pytest.mark.hostlane
def test_rm_f_racing_the_containers_own_rm(nsbox, tmp_path):
    """rm -f while the --rm container removes itself: it succeeds or says "No such container",
    never a raw error about a file of the vanishing record."""
    import os
    import subprocess
    import time
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    outcomes = []
    for i in range(45):
        cid = nsbox.ok("run", "-d", "--rm", *NONE, "-v", f"{tmp_path}:/x", "busybox",
                       "sh", "-c", "read x < /x/go").strip()
        w = os.open(fifo, os.O_WRONLY)  # returns once the container has it open: it is running
        rm = nsbox.popen("rm", "-f", cid, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(i % 4 * 0.01)  # not a wait for anything: spreads where in rm -f the exit lands
        os.close(w)  # EOF: the container exits and its monitor removes it, racing the rm -f
        out, err = rm.communicate(timeout=120)
        outcomes.append((rm.returncode, err.strip()))
        assert wait_for(lambda: nsbox("inspect", cid).returncode != 0, timeout=60)
    bad = [o for o in outcomes if o[0] != 0 and "No such container" not in o[1]]
    assert not bad, bad
    assert not [o for o in outcomes if "Errno" in o[1]], outcomes


def test_events_log_is_rotated_by_size(nsbox):
    """events.log never grows past its bound: the monitor's append that passes it rotates the file,
    and the reader still sees the newest events after the older ones."""
    import json
    import os
    from nsbox.runtime import events
    path = events.log_path(nsbox.root)
    old = {"status": "die", "id": "0" * 64, "Type": "container", "Action": "die", "time": 1}
    with open(path, "a") as f:
        while f.tell() <= events.MAX_BYTES:
            f.write(json.dumps(old) + "\n")
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "true").strip()
    nsbox.ok("wait", cid)
    assert wait_for(lambda: [e["Action"] for e in events.read(nsbox.root) if e["id"] == cid] == ["start", "die"])
    assert os.path.getsize(path) < events.MAX_BYTES and os.path.exists(path + ".1")
    assert events.read(nsbox.root)[-1]["id"] == cid


def test_kill_and_rm_of_a_record_that_removed_itself_meanwhile(nsbox, paths, tmp_path):
    """The race above, made deterministic: rm -f looked the container up while it ran, then the
    container exited and its monitor removed it (--rm) before rm -f took its lock."""
    import os
    from nsbox.runtime.engine import Engine
    from nsbox.runtime.errors import NotFound
    os.mkfifo(tmp_path / "go")
    cid = nsbox.ok("run", "-d", "--rm", *NONE, "-v", f"{tmp_path}:/x", "busybox",
                   "sh", "-c", "read x < /x/go").strip()
    eng = Engine(paths)
    rec = eng.get(cid)
    os.close(os.open(tmp_path / "go", os.O_WRONLY))  # EOF: it exits and removes itself
    assert wait_for(lambda: not os.path.isdir(rec.dir), timeout=60)
    with pytest.raises(NotFound, match="No such container"):
        eng.kill(rec)               # not a raw ENOENT about its lock file
    eng.rm(rec, force=True)         # what was asked is done
