"""seccomp: docker's allow-list, built with libseccomp, checked from inside real containers."""
import json
import os

import pytest

pytestmark = pytest.mark.vm
NONE = ("--network", "none")
PODMAN = "/usr/share/containers/seccomp.json"


def probe(nsbox, secprobe, *args) -> dict[str, tuple[int, int]]:
    """Run the static probe (tests/core/secprobe.c): {check: (return value, errno)}."""
    out = nsbox.ok("run", "--rm", *NONE, "-v", f"{secprobe}:/probe:ro", *args, "busybox", "/probe/secprobe")
    return {k: tuple(int(x) for x in v.split(":")) for k, v in (line.split("=") for line in out.split())}


EPERM, EFAULT, ENOSYS = 1, 14, 38


def test_default_profile_refuses_what_docker_refuses(nsbox, secprobe):
    r = probe(nsbox, secprobe)
    # io_uring (docker >= 25, podman), through all three x86 ABIs
    assert r["io_uring_setup"] == r["io_uring_setup_i386"] == r["io_uring_setup_x32"] == (-1, EPERM), r
    assert r["getpid_i386"][0] == 1                          # the i386 ABI itself still works
    assert r["personality_rie"] == (-1, EPERM)              # READ_IMPLIES_EXEC
    assert r["personality_query"][0] >= 0                    # 0xffffffff, the query, is allowed
    assert r["clone_newuser"] == (-1, EPERM) and r["unshare_user"] == (-1, EPERM)
    assert r["clone_plain"] == (0, 0)                        # fork still works
    assert r["clone3"] == (-1, ENOSYS)                       # so libc falls back to clone
    assert r["keyctl"] == (-1, EPERM) and r["sethostname"] == (-1, EPERM)
    assert r["mkdir"] == (0, 0)


def test_cap_sys_admin_enables_what_docker_enables(nsbox, secprobe):
    r = probe(nsbox, secprobe, "--cap-add", "SYS_ADMIN")
    assert r["clone_newuser"] == (0, 0) and r["clone3"] == (0, 0) and r["unshare_user"] == (0, 0)
    assert r["sethostname"] == (0, 0)
    assert r["io_uring_setup"] == (-1, EPERM) and r["personality_rie"] == (-1, EPERM)  # no cap opens these


def test_unconfined_allows_them(nsbox, secprobe):
    r = probe(nsbox, secprobe, "--security-opt", "seccomp=unconfined")
    assert r["io_uring_setup"] == (-1, EFAULT)               # reached the kernel (NULL params)
    assert r["personality_rie"][0] >= 0 and r["clone_newuser"] == (0, 0) and r["clone3"] == (0, 0)
    nsbox.ok("create", "--name", "unc", "--security-opt", "seccomp=unconfined", "busybox", "true")
    assert nsbox.inspect("unc")["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]


def test_custom_profile(nsbox, tmp_path):
    prof = tmp_path / "nomkdir.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    r = nsbox("run", "--rm", *NONE, "--security-opt", f"seccomp={prof}", "busybox", "sh", "-c",
              "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched")
    assert "Permission denied" in r.stderr and "rc=1" in r.stdout and "touched" in r.stdout, (r.stdout, r.stderr)
    nsbox.ok("run", "-d", "--name", "cp", *NONE, "--security-opt", f"seccomp={prof}", "busybox", "sleep", "600")
    assert nsbox.inspect("cp")["HostConfig"]["SecurityOpt"] == [f"seccomp={prof}"]
    r = nsbox("exec", "cp", "mkdir", "/tmp/e")                # exec gets the container's filter
    assert r.returncode == 1 and "Permission denied" in r.stderr
    prof.write_text("{}")  # the container keeps the profile it was created with
    r = nsbox("exec", "cp", "mkdir", "/tmp/e")
    assert r.returncode == 1


@pytest.mark.skipif(not os.path.exists(PODMAN), reason="containers-common is not installed")
def test_podmans_profile_loads_and_works(nsbox, secprobe):
    r = probe(nsbox, secprobe, "--security-opt", f"seccomp={PODMAN}")
    assert r["io_uring_setup"] == (-1, ENOSYS) and r["keyctl"][0] >= 0 and r["mkdir"] == (0, 0)
    out = nsbox.ok("run", "--rm", *NONE, "--security-opt", f"seccomp={PODMAN}", "busybox", "sh", "-c",
                   "grep Seccomp: /proc/self/status; echo hi | wc -c")
    assert "Seccomp:\t2" in out and out.split()[-1] == "3"


@pytest.mark.parametrize("content", ['{"defaultAction": 5}', "not json", '{"defaultAction": "SCMP_ACT_ERRNO", '
                                     '"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7}]}]}'])
def test_malformed_profile_is_one_line_125(nsbox, tmp_path, content):
    prof = tmp_path / "bad.json"
    prof.write_text(content)
    r = nsbox("run", "--rm", *NONE, "--name", "bad", "--security-opt", f"seccomp={prof}", "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "seccomp profile" in r.stderr, r.stderr
    assert nsbox.ok("ps", "-aq") == ""                         # nothing half-made
    r = nsbox("run", "--rm", *NONE, "--security-opt", f"seccomp={tmp_path}/missing.json", "busybox", "true")
    assert r.returncode == 125 and "No such file" in r.stderr


def test_filter_is_cached_per_profile(nsbox, paths):
    """libseccomp's export costs ~20 ms: the compiled program is kept by profile hash under the runroot."""
    nsbox.ok("run", "--rm", *NONE, "busybox", "true")
    nsbox.ok("run", "--rm", *NONE, "--cap-add", "SYS_ADMIN", "busybox", "true")
    cache = os.path.join(paths.runroot, "seccomp")
    before = sorted(os.listdir(cache))
    assert len(before) >= 2 and all(n.endswith(".bpf") for n in before)
    nsbox.ok("run", "--rm", *NONE, "busybox", "true")
    assert sorted(os.listdir(cache)) == before
