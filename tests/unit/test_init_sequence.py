"""The init checklist, run against the recording fake syscall layer (no root needed)."""
import errno
import os

import pytest

from nsbox.runtime import init as I
from nsbox.runtime import linux as L
from nsbox.runtime import specgen as G
from nsbox.runtime.errors import InvalidArgument as InvalidArgumentError
from nsbox.runtime.fakesys import ExecCalled, FakeSyscalls


def make_cfg(tmp_path, **kw):
    spec = G.build_spec(args=kw.get("args", ["/bin/true"]), env=["PATH=/bin"], cwd="/", user="",
                        hostname="box", tty=False, caps=["CHOWN", "KILL"], privileged=False,
                        read_only=kw.get("read_only", False), mounts=kw.get("mounts", []),
                        namespaces=[{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
                                    {"type": "network"}],
                        resources={}, cgroups_path="p/x", sysctls=kw.get("sysctls", {}),
                        oom_score_adj=None, console_size=None)
    root = tmp_path / "merged"
    root.mkdir()
    return {"Spec": spec, "RootfsPath": str(root), "HostConfig": {},
            "Rootfs": {"kind": "overlay", "lowerdirs": ["/l2", "/l1"], "upper": "/u", "work": "/w"}}


def run_init(cfg, sc):
    joined = []

    def join():
        joined.append(True)
        sc.calls.append(("join_cgroup",))
    io = I.InitIO(error_fd=-1, join_cgroup=join, seccomp=b"compiled")
    with pytest.raises(ExecCalled):
        I._init(sc, cfg, io)
    return joined


def test_order_of_the_checklist(tmp_path):
    sc = FakeSyscalls()
    joined = run_init(make_cfg(tmp_path), sc)
    names = sc.names()
    assert joined == [True]
    # namespaces, then / private before any other mount, then the rootfs, ... pivot, exec last
    assert names[0] == "unshare"
    flags = sc.calls[0][1]
    assert flags & L.CLONE_NEWNS and flags & L.CLONE_NEWNET and not flags & L.CLONE_NEWPID
    first_mount = sc.calls[names.index("mount")]
    assert first_mount[1:] == (None, "/", None, L.MS_REC | L.MS_PRIVATE)
    overlay = [c for c in sc.calls if c[0] == "mount" and c[3] == "overlay"][0]
    assert "lowerdir=/l2:/l1" in overlay[5]            # top layer leftmost
    assert names.index("sethostname") < names.index("pivot_root")
    assert names.index("pivot_root") < names.index("capset") < names.index("execvpe")
    assert names.index("setuid") < names.index("capset")
    # the monitor moves us into the cgroups while we mount; we wait for that before user or exec
    assert names.index("pivot_root") < names.index("join_cgroup") < names.index("setuid")
    assert names[-2:] == ["close_fds_except", "execvpe"]
    nnp = [c for c in sc.calls if c[0] == "prctl" and c[1] == L.PR_SET_NO_NEW_PRIVS]
    assert nnp, "no_new_privs must be set"


def test_bounding_set_dropped(tmp_path):
    sc = FakeSyscalls()
    run_init(make_cfg(tmp_path), sc)
    dropped = {c[2] for c in sc.calls if c[0] == "prctl" and c[1] == L.PR_CAPBSET_DROP}
    from nsbox.runtime.caps import NUMBER
    assert NUMBER["SYS_ADMIN"] in dropped and NUMBER["CHOWN"] not in dropped and NUMBER["KILL"] not in dropped
    capset = [c for c in sc.calls if c[0] == "capset"][0]
    assert capset[1] == (1 << NUMBER["CHOWN"]) | (1 << NUMBER["KILL"])


def test_readonly_rootfs_and_masks(tmp_path):
    sc = FakeSyscalls()
    run_init(make_cfg(tmp_path, read_only=True), sc)
    ro = [c for c in sc.calls if c[0] == "mount" and c[2] == "/" and c[4] & L.MS_RDONLY]
    assert ro and ro[0][4] & L.MS_REMOUNT and ro[0][4] & L.MS_BIND


def test_sysctl_written_before_pivot(tmp_path):
    sc = FakeSyscalls()
    run_init(make_cfg(tmp_path, sysctls={"net.ipv4.ip_forward": "1"}), sc)
    names = sc.names()
    w = names.index("write_file")
    assert sc.calls[w][1].endswith("proc/sys/net/ipv4/ip_forward") and w < names.index("pivot_root")


@pytest.mark.parametrize("err,code,msg", [
    (FileNotFoundError(errno.ENOENT, "x"), 127, "executable file not found"),
    (PermissionError(errno.EACCES, "x"), 126, "permission denied"),
])
def test_exec_errors_map_to_docker_codes(tmp_path, err, code, msg):
    sc = FakeSyscalls(exec_error=err)
    with pytest.raises(I.InitError) as e:
        I._init(sc, make_cfg(tmp_path, args=["nope"]), I.InitIO(error_fd=-1, seccomp=b"compiled"))
    assert e.value.code == code and msg in str(e.value)


def test_errors_reach_the_pipe(tmp_path):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        sc = FakeSyscalls(exec_error=FileNotFoundError(errno.ENOENT, "x"))
        I.run(sc, make_cfg(tmp_path, args=["nope"]), I.InitIO(error_fd=w, seccomp=b"compiled"))
    os.close(w)
    data = os.read(r, 4096)
    os.waitpid(pid, 0)
    import json
    assert json.loads(data)["code"] == 127


def test_bind_mount_readonly_needs_remount(tmp_path):
    sc = FakeSyscalls()
    src = tmp_path / "src"
    src.mkdir()
    I.do_mount(sc, str(tmp_path), {"destination": "/data", "type": "bind", "source": str(src),
                                   "options": ["rbind", "ro"]})
    mounts = [c for c in sc.calls if c[0] == "mount"]
    assert mounts[0][4] & L.MS_BIND and not mounts[0][4] & L.MS_RDONLY
    assert mounts[1][4] & L.MS_REMOUNT and mounts[1][4] & L.MS_RDONLY


def test_safe_join_never_escapes(tmp_path):
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    os.symlink("/../../..", root / "etc" / "up")
    os.symlink("../../../../tmp", root / "rel")
    assert I.safe_join(str(root), "/etc/up/x").startswith(str(root))
    assert I.safe_join(str(root), "/rel/y").startswith(str(root))
    assert I.safe_join(str(root), "/../../etc") == str(root / "etc")


def test_user_resolution(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n")
    real = I._read_db
    monkeypatch.setattr(I, "_read_db", lambda p: real(str(tmp_path) + p))
    assert I.resolve_user({"username": "bob"}) == (1000, 1000, [10], "/home/bob")
    assert I.resolve_user({"username": "bob:wheel"})[:2] == (1000, 10)
    assert I.resolve_user({"username": "4242"})[:2] == (4242, 0)
    assert I.resolve_user({"username": "0:1000"})[:2] == (0, 1000)
    with pytest.raises(I.InitError, match="unable to find user nobody2"):
        I.resolve_user({"username": "nobody2"})
    with pytest.raises(I.InitError, match="unable to find group"):
        I.resolve_user({"username": "bob:nogroup"})


def test_seccomp_installed_last_with_nnp(tmp_path):
    sc = FakeSyscalls()
    cfg = make_cfg(tmp_path)
    cfg["Spec"]["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    run_init(cfg, sc)
    names = sc.names()
    assert names.index("capset") < names.index("seccomp_filter") < names.index("execvpe")
    nnp = sc.calls.index(("prctl", L.PR_SET_NO_NEW_PRIVS, 1))
    assert nnp < names.index("seccomp_filter")
    assert ("seccomp_filter", b"compiled") in sc.calls  # the monitor's program, loaded as is
    cfg["Spec"]["process"]["noNewPrivileges"] = False
    sc = FakeSyscalls()
    run_init(cfg, sc)
    names = sc.names()
    assert names.index("seccomp_filter") < names.index("capset")


def test_seccomp_fails_closed_without_a_program(tmp_path):
    """A confined container whose filter did not reach the init must not run unconfined."""
    cfg = make_cfg(tmp_path)
    sc = FakeSyscalls()
    with pytest.raises(I.InitError, match="seccomp"):
        I._init(sc, cfg, I.InitIO(error_fd=-1))
    assert "execvpe" not in sc.names()


def test_stays_non_dumpable_until_exec(tmp_path):
    """setuid and capset reset dumpability to fs.suid_dumpable: the init sets it again after them."""
    sc = FakeSyscalls()
    run_init(make_cfg(tmp_path), sc)
    names = sc.names()
    dump = sc.calls.index(("prctl", L.PR_SET_DUMPABLE, 0))
    assert names.index("setuid") < names.index("capset") < dump < names.index("execvpe")


def test_security_opts():
    from nsbox.runtime.specgen import parse_security_opts
    assert parse_security_opts([], False) == {"seccomp": True, "no_new_privileges": True}
    assert parse_security_opts(["seccomp=unconfined"], False)["seccomp"] is False
    assert parse_security_opts(["seccomp:unconfined"], False)["seccomp"] is False
    assert parse_security_opts(["no-new-privileges=false"], False)["no_new_privileges"] is False
    assert parse_security_opts([], True)["seccomp"] is False
    assert parse_security_opts(["seccomp=/some/profile.json"], False)["seccomp"] == "/some/profile.json"
    assert parse_security_opts(["seccomp=/some/profile.json"], True)["seccomp"] is False
    assert parse_security_opts(["seccomp=/a:b.json"], False)["seccomp"] == "/a:b.json"
    assert parse_security_opts(["seccomp:/a=b.json"], False)["seccomp"] == "/a=b.json"
    with pytest.raises(InvalidArgumentError):
        parse_security_opts(["seccomp="], False)


def test_safe_join_refuses_link_loops_and_overlong_chains(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    os.symlink("/b", root / "a")
    os.symlink("/a", root / "b")
    for i in range(45):
        os.symlink(f"/l{i + 1}", root / f"l{i}")
    os.symlink(str(tmp_path), root / "l45")
    for dest in ("/a/x", "/l0"):
        with pytest.raises(OSError) as e:
            I.safe_join(str(root), dest)
        assert e.value.errno == errno.ELOOP
