"""A full disk: stop, kill and rm -f still act (signal first, state writes best effort, no tmp files
left), and commit/build say which path filled up."""
from __future__ import annotations

import errno
import os
import subprocess
import tempfile

import pytest

from nsbox_testlib import wait_for

NONE = ("--network", "none")


def _fill(root: str) -> None:
    """Zero free bytes on the filesystem of `root`."""
    with open(os.path.join(root, "fill"), "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    assert os.statvfs(root).f_bavail == 0


def _unfill(root: str) -> None:
    try:
        os.unlink(os.path.join(root, "fill"))
    except FileNotFoundError:
        pass


@pytest.fixture
def full(nsbox_env, nsbox):
    """A second state root on a small tmpfs of its own (under the run's dir: the leak check sees it)."""
    base = tempfile.mkdtemp(prefix="full-", dir=nsbox_env["base"])
    root, runroot = os.path.join(base, "root"), os.path.join(base, "run")
    os.makedirs(root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0711", "nsbox-test-full", root], check=True)
    n = type(nsbox)(dict(nsbox_env["env"], NSBOX_ROOT=root, NSBOX_RUNROOT=runroot))
    try:
        n.ok("run", "--rm", *NONE, "busybox", "true")  # the default image, while there is room
        yield n
    finally:
        _unfill(root)
        ids = n("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            n("rm", "-f", *ids)
        from nsbox.runtime.cleanup import purge_root
        from nsbox.runtime.paths import Paths
        purge_root(Paths(root, runroot))
        subprocess.run(["umount", root], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", base], check=False)


def _tmp_files(root: str) -> list[str]:
    out = []
    for d, _, files in os.walk(os.path.join(root, "containers")):
        out += [os.path.join(d, f) for f in files if ".tmp" in f]
    return out


def _pid(n, ref) -> int:
    return n.inspect(ref)["State"]["Pid"]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stop_kill_rm_work_on_a_full_disk(full):
    n = full
    for name in ("s", "k", "r"):
        n.ok("run", "-d", "--name", name, *NONE, "busybox", "sleep", "600")
    n.ok("run", "-d", "--name", "a", "--restart", "always", *NONE, "busybox", "sleep", "600")
    pids = {name: _pid(n, name) for name in ("s", "k", "r", "a")}
    _fill(n.root)

    r = n("stop", "-t", "1", "s")
    assert r.returncode == 0, r.stderr
    r = n("kill", "k")
    assert r.returncode == 0, r.stderr
    r = n("rm", "-f", "r")
    assert r.returncode == 0, r.stderr
    r = n("kill", "a")
    assert r.returncode == 0, r.stderr
    for name in ("s", "k", "r", "a"):
        assert wait_for(lambda: _gone(pids[name]), timeout=30), name
    assert n("inspect", "r").returncode != 0
    # the kill was recorded without room for the state: the restart policy still stands down
    # (a restarting monitor would stay alive for ever)
    mon = os.path.join(n.root, "containers", n.inspect("a")["Id"], "state.json")
    import json
    with open(mon) as f:
        m = json.load(f)
    from nsbox.runtime.state import alive
    assert wait_for(lambda: not alive(m["MonitorPid"], m["MonitorStart"]), timeout=30)
    for name in ("s", "k", "a"):
        assert n.inspect(name)["State"]["Running"] is False
    assert _tmp_files(n.root) == []


def test_commit_on_a_full_disk_names_the_path(full):
    n = full
    n.ok("run", "--name", "c", *NONE, "busybox", "sh", "-c", "head -c 3000000 /dev/urandom > /blob")
    _fill(n.root)
    r = n("commit", "c", "img")
    assert r.returncode == 125
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Errno" not in lines[0], r.stderr
    assert "no space left on device" in lines[0] and n.root in lines[0], r.stderr


def test_build_on_a_full_disk_names_the_path(full, tmp_path):
    n = full
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(os.urandom(3 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    _fill(n.root)
    r = n("build", "-t", "img", str(ctx))
    assert r.returncode != 0
    err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "Errno" not in err[0], r.stderr
    assert "no space left on device" in err[0] and n.root in err[0], r.stderr
