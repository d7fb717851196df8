"""A create killed before its record is whole (kill -9 early in `run --name X`) leaves a directory
without config.json and a name reservation: ps, rm and the next run with that name sweep it, and
never while its creator is still at work."""
from __future__ import annotations

import fcntl
import os

import pytest

NONE = ("--network", "none")


def _half_made(root: str, name: str, cid: str, lock: bool) -> str:
    """What a creator killed after reserving the name and making the directory leaves on disk."""
    d = os.path.join(root, "containers", cid)
    os.makedirs(os.path.join(d, "upper"))
    if lock:
        open(os.path.join(d, "create.lock"), "w").close()
    os.makedirs(os.path.join(root, "names"), exist_ok=True)
    with open(os.path.join(root, "names", name), "w") as f:
        f.write(cid)
    return d


@pytest.fixture(params=["older-version", "create-lock"])
def leftover(request, nsbox):
    cid = os.urandom(32).hex()
    d = _half_made(nsbox.root, "halfx", cid, lock=request.param == "create-lock")
    return cid, d


def _swept(nsbox, d: str) -> bool:
    return not os.path.exists(d) and not os.path.exists(os.path.join(nsbox.root, "names", "halfx"))


def test_ps_sweeps_a_half_made_record(nsbox, leftover):
    cid, d = leftover
    assert cid not in nsbox.ok("ps", "-aq", "--no-trunc")
    assert _swept(nsbox, d)
    nsbox.ok("run", "--rm", "--name", "halfx", *NONE, "busybox", "true")


def test_rm_f_removes_a_half_made_record(nsbox, leftover):
    cid, d = leftover
    r = nsbox("rm", "-f", "halfx")
    assert r.returncode == 0 and r.stdout.strip() == "halfx", r.stderr
    assert _swept(nsbox, d)


def test_run_with_the_name_sweeps_it(nsbox, leftover):
    cid, d = leftover
    assert nsbox.ok("run", "--rm", "--name", "halfx", *NONE, "busybox", "echo", "hi").strip() == "hi"
    assert not os.path.exists(d)


def test_a_live_creator_is_never_swept(nsbox):
    cid = os.urandom(32).hex()
    d = _half_made(nsbox.root, "halfx", cid, lock=True)
    fd = os.open(os.path.join(d, "create.lock"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the creating CLI holds it until config.json is written
        assert cid not in nsbox.ok("ps", "-aq", "--no-trunc")
        r = nsbox("run", "--rm", "--name", "halfx", *NONE, "busybox", "true")
        assert r.returncode == 125 and "already in use" in r.stderr
        assert nsbox("rm", "-f", "halfx").returncode == 1
        assert os.path.isdir(d) and os.path.exists(os.path.join(nsbox.root, "names", "halfx"))
    finally:
        os.close(fd)
    nsbox.ok("rm", "-f", "halfx")  # the creator is gone now
    assert _swept(nsbox, d)


def test_kill_9_inside_run_name(nsbox):
    """The real thing: the CLI dies (SIGKILL) after the record's directory, name and writable layer
    exist but before config.json (a test-only crash point)."""
    r = nsbox("run", "--name", "halfx", *NONE, "busybox", "true", env={"NSBOX_TEST_CRASH": "create"})
    assert r.returncode != 0
    with open(os.path.join(nsbox.root, "names", "halfx")) as f:
        cid = f.read().strip()
    d = os.path.join(nsbox.root, "containers", cid)
    assert os.path.isdir(os.path.join(d, "upper")) and not os.path.exists(os.path.join(d, "config.json"))
    assert nsbox.ok("run", "--rm", "--name", "halfx", *NONE, "busybox", "echo", "hi").strip() == "hi"
    assert not os.path.exists(d)
