"""Volumes (bind, named, anonymous), cp in both directions, exec."""
import os

import pytest

pytestmark = pytest.mark.vm
NONE = ("--network", "none")


def test_bind_mount_rw_and_ro(nsbox, tmp_path):
    (tmp_path / "in.txt").write_text("from-host")
    r = nsbox("run", "--rm", *NONE, "-v", f"{tmp_path}:/data", "busybox", "sh", "-c",
              "cat /data/in.txt; echo from-ctr > /data/out.txt")
    assert r.stdout == "from-host"
    assert (tmp_path / "out.txt").read_text() == "from-ctr\n"
    r = nsbox("run", "--rm", *NONE, "-v", f"{tmp_path}:/data:ro", "busybox", "sh", "-c", "touch /data/x 2>&1; echo $?")
    assert "Read-only" in r.stdout


def test_named_volume_lifecycle(nsbox):
    nsbox.ok("volume", "create", "vol1")
    nsbox.ok("run", "--rm", *NONE, "-v", "vol1:/v", "busybox", "sh", "-c", "echo persisted > /v/f")
    assert nsbox.ok("run", "--rm", *NONE, "-v", "vol1:/v", "busybox", "cat", "/v/f") == "persisted\n"
    assert "vol1" in nsbox.ok("volume", "ls", "-q").split()
    import json
    info = json.loads(nsbox.ok("volume", "inspect", "vol1"))[0]
    assert info["Name"] == "vol1" and info["Mountpoint"].endswith("/_data")
    nsbox.ok("create", "--name", "user", *NONE, "-v", "vol1:/v", "busybox", "true")
    r = nsbox("volume", "rm", "vol1")
    assert r.returncode == 1 and "in use" in r.stderr
    nsbox.ok("rm", "user")
    nsbox.ok("volume", "rm", "vol1")
    assert nsbox.ok("volume", "ls", "-q") == ""


def test_volume_copies_image_content_first_time(nsbox):
    r = nsbox("run", "--rm", *NONE, "-v", "etcvol:/etc", "busybox", "ls", "/etc")
    assert "passwd" in r.stdout
    nsbox.ok("volume", "rm", "etcvol")


def test_anonymous_volume_removed_with_rm_v(nsbox):
    cid = nsbox.ok("create", *NONE, "-v", "/anon", "busybox", "true").strip()
    names = nsbox.ok("volume", "ls", "-q").split()
    assert len(names) == 1
    nsbox.ok("rm", "-v", cid)
    assert nsbox.ok("volume", "ls", "-q") == ""


def test_volume_prune(nsbox):
    nsbox.ok("volume", "create", "keepme")
    nsbox.ok("create", "--name", "x", *NONE, "-v", "/anon2", "busybox", "true")
    nsbox.ok("rm", "x")
    out = nsbox.ok("volume", "prune", "-f")
    assert "keepme" not in out
    assert nsbox.ok("volume", "ls", "-q").split() == ["keepme"]
    nsbox.ok("volume", "rm", "keepme")


@pytest.mark.parametrize("spec", ["", "a:b", "/x:/y:zz", "bad name:/x"])
def test_bad_volume_is_125_and_leaves_nothing(nsbox, spec):
    r = nsbox("run", "--rm", *NONE, "-v", spec, "busybox", "true")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert nsbox.ok("ps", "-aq") == "" and nsbox.ok("volume", "ls", "-q") == ""


def test_cp_both_ways_running_and_stopped(nsbox, tmp_path):
    (tmp_path / "f.txt").write_text("hello-cp")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inner").write_text("inner")
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "300").strip()
    nsbox.ok("cp", str(tmp_path / "f.txt"), f"{cid}:/tmp/")
    nsbox.ok("cp", str(tmp_path / "d"), f"{cid}:/tmp/d2")
    assert nsbox.ok("exec", cid, "cat", "/tmp/f.txt", "/tmp/d2/inner") == "hello-cpinner"
    nsbox.ok("cp", f"{cid}:/etc/passwd", str(tmp_path / "passwd"))
    assert "root:" in (tmp_path / "passwd").read_text()
    nsbox.ok("stop", "-t", "0", cid)
    nsbox.ok("cp", str(tmp_path / "f.txt"), f"{cid}:/stopped.txt")
    nsbox.ok("cp", f"{cid}:/tmp/d2", str(tmp_path / "back"))
    assert (tmp_path / "back" / "inner").read_text() == "inner"
    nsbox.ok("start", cid)
    assert nsbox.ok("exec", cid, "cat", "/stopped.txt") == "hello-cp"
    r = nsbox("cp", f"{cid}:/nonexistent", str(tmp_path))
    assert r.returncode == 125


def test_exec_flags_and_codes(nsbox):
    nsbox.ok("run", "-d", "--name", "ex", *NONE, "-e", "BASE=1", "busybox", "sleep", "300")
    r = nsbox("exec", "-e", "X=2", "-w", "/tmp", "-u", "nobody", "ex", "sh", "-c", "echo $BASE $X; pwd; id -u")
    assert r.stdout.split() == ["1", "2", "/tmp", "65534"]
    assert nsbox("exec", "ex", "sh", "-c", "exit 9").returncode == 9
    assert nsbox("exec", "ex", "nosuch").returncode == 127
    assert nsbox("exec", "-i", "ex", "cat", input="stdin-data").stdout == "stdin-data"
    nsbox.ok("exec", "-d", "ex", "sh", "-c", "sleep 0.2; touch /tmp/detached")
    from nsbox_testlib import wait_for
    assert wait_for(lambda: nsbox("exec", "ex", "test", "-f", "/tmp/detached").returncode == 0)
    pid_ns = nsbox.ok("exec", "ex", "readlink", "/proc/self/ns/pid")
    pid1_ns = nsbox.ok("exec", "ex", "readlink", "/proc/1/ns/pid")
    assert pid_ns == pid1_ns
    caps = nsbox.ok("exec", "ex", "grep", "CapEff", "/proc/self/status").split()[1]
    assert caps == "00000000a80425fb"
    nsbox.ok("stop", "-t", "0", "ex")
    assert nsbox("exec", "ex", "true").returncode == 125


def test_concurrent_creates(nsbox):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: nsbox("create", "--name", f"c{i}", *NONE, "busybox", "true"), range(20)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    assert len(set(r.stdout for r in results)) == 20
    assert len(nsbox.ok("ps", "-aq").split()) == 20
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: nsbox("create", "--name", "same", *NONE, "busybox", "true"), range(10)))
    assert sum(r.returncode == 0 for r in results) == 1


def test_two_clis_on_one_container(nsbox):
    import concurrent.futures
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "300").strip()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda f: f(), [lambda: nsbox("stop", "-t", "1", cid), lambda: nsbox("kill", cid),
                                            lambda: nsbox("inspect", cid), lambda: nsbox("stop", "-t", "1", cid)]))
    assert nsbox.inspect(cid)["State"]["Status"] == "exited"
    import json
    assert json.loads(open(os.path.join(nsbox.root, "containers", cid, "state.json")).read())
