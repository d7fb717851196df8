"""Isolation and security defaults, checked from inside real containers."""
import os
import sys

import pytest

from nsbox_testlib import wait_for

pytestmark = pytest.mark.vm
NONE = ("--network", "none")


def run(nsbox, *args):
    return nsbox("run", "--rm", *NONE, *args)


def test_namespaces_are_new(nsbox):
    r = run(nsbox, "busybox", "sh", "-c", "for n in pid mnt uts ipc net; do readlink /proc/1/ns/$n; done; echo $$")
    inside = r.stdout.split()
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "uts", "ipc", "net")]
    for a, b in zip(inside[:5], host):
        assert a != b
    assert inside[5] == "1"


def test_default_capabilities(nsbox):
    r = run(nsbox, "busybox", "grep", "Cap", "/proc/1/status")
    caps = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps["CapEff"] == "00000000a80425fb" == caps["CapBnd"]  # docker's default set
    assert caps["CapInh"] == "0000000000000000"
    r = run(nsbox, "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "busybox", "grep", "CapEff", "/proc/1/status")
    eff = int(r.stdout.split()[1], 16)
    assert eff & (1 << 12) and not eff & 1
    r = run(nsbox, "-u", "1000", "busybox", "grep", "CapEff", "/proc/1/status")
    assert r.stdout.split()[1] == "0000000000000000"


def test_no_new_privs(nsbox):
    r = run(nsbox, "busybox", "grep", "NoNewPrivs", "/proc/1/status")
    assert r.stdout.split()[1] == "1"


def test_masked_and_readonly_paths(nsbox):
    r = run(nsbox, "busybox", "sh", "-c",
            "cat /proc/keys | wc -c; cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l;"
            "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-ro;"
            "touch /sys/x 2>/dev/null && echo sysfs-writable || echo sysfs-ro")
    assert r.stdout.split() == ["0", "0", "0", "sys-ro", "sysfs-ro"], r.stdout


def test_host_block_devices_are_masked(nsbox):
    """podman masks /sys/dev/block (the host's disks, partitions and their serials), docker >= 28
    /proc/interrupts; --privileged sees them."""
    if not os.listdir("/sys/dev/block"):
        pytest.skip("this host has no block devices")
    r = run(nsbox, "busybox", "sh", "-c", "ls /sys/dev/block | wc -l; cat /proc/interrupts | wc -c;"
            "echo x > /sys/dev/block/new 2>/dev/null && echo writable || echo ro")
    assert r.stdout.split() == ["0", "0", "ro"], r.stdout
    r = run(nsbox, "--privileged", "busybox", "sh", "-c", "ls /sys/dev/block | wc -l")
    assert int(r.stdout) == len(os.listdir("/sys/dev/block"))


def test_mount_denied_and_block_mknod_denied(nsbox):
    r = run(nsbox, "busybox", "sh", "-c",
            "mount -t tmpfs t /mnt 2>&1; echo rc=$?; mknod /tmp/disk b 254 0 2>&1; echo rc=$?;"
            "mknod /tmp/n c 1 3 && echo charok")
    out = r.stdout
    assert "rc=0" not in out.split("\n")[1] if False else out.count("rc=0") == 0, out
    assert "charok" in out


def test_dev_contents(nsbox):
    r = run(nsbox, "busybox", "sh", "-c", "ls /dev; ls -l /dev/fd /dev/ptmx; mount | grep -E ' /dev/(pts|shm|mqueue) '")
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "stdin", "stdout", "stderr"):
        assert name in r.stdout
    assert "-> /proc/self/fd" in r.stdout and "-> pts/ptmx" in r.stdout
    r = run(nsbox, "busybox", "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    assert r.stdout.strip() == "4"


def test_fds_closed_and_proc_readonly_sysctl(nsbox):
    r = run(nsbox, "busybox", "sh", "-c", "ls /proc/1/fd; true")  # sh stays PID 1
    assert sorted(r.stdout.split()) == ["0", "1", "2"]


def test_root_is_pivoted_and_private(nsbox):
    r = run(nsbox, "busybox", "sh", "-c", "cat /proc/1/mountinfo | head -1; ls /")
    first = r.stdout.splitlines()[0]
    assert " / / " in first and "overlay" in first
    assert "shared:" not in r.stdout


def test_privileged_gets_everything(nsbox):
    r = run(nsbox, "--privileged", "busybox", "sh", "-c", "grep CapEff /proc/1/status; cat /proc/keys >/dev/null && echo keys")
    assert int(r.stdout.split()[1], 16) > 0xa80425fb


def test_etc_files_are_managed(nsbox):
    r = run(nsbox, "--hostname", "hh", "--add-host", "db:10.1.2.3", "--dns", "127.0.0.53", "busybox", "sh", "-c",
            "cat /etc/hostname /etc/hosts /etc/resolv.conf")
    assert "hh" in r.stdout and "10.1.2.3\tdb" in r.stdout and "nameserver 127.0.0.53" in r.stdout


def test_seccomp_default_and_unconfined(nsbox):
    r = run(nsbox, "busybox", "sh", "-c", "grep Seccomp: /proc/1/status; unshare -U true 2>&1; echo rc=$?")
    assert "Seccomp:\t2" in r.stdout and "rc=1" in r.stdout and "not permitted" in r.stdout
    r = run(nsbox, "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
            "grep Seccomp: /proc/1/status; unshare -U true && echo userns-ok")
    assert "Seccomp:\t0" in r.stdout and "userns-ok" in r.stdout
    r = run(nsbox, "--security-opt", "seccomp=/x.json", "busybox", "true")
    assert r.returncode == 125
    nsbox.ok("run", "-d", "--name", "sc", "--network", "none", "busybox", "sleep", "300")
    assert "Seccomp:\t2" in nsbox.ok("exec", "sc", "grep", "Seccomp:", "/proc/self/status")


def _host_python() -> os.stat_result:
    """The interpreter every nsbox process runs (the file CVE-2019-5736 would overwrite)."""
    return os.stat(os.path.realpath(sys.executable))


def test_init_process_is_not_dumpable(nsbox):
    """With --init, PID 1 stays the host's python for the container's whole life: the container
    must not open its /proc/1/exe (the host binary) nor its fds."""
    nsbox.ok("run", "-d", "--init", "--name", "ini", *NONE, "busybox", "sleep", "600")
    r = nsbox("exec", "ini", "sh", "-c", "head -c 4 /proc/1/exe; readlink /proc/1/exe; cat /proc/1/fd/0; true")
    assert r.stdout == "", r.stdout  # not the ELF header, nor the host path of the interpreter
    assert r.stderr.count("Permission denied") == 2, r.stderr  # busybox readlink fails silently
    # `sleep`, PID 1's child, is an ordinary program: dumpable again after its exec
    assert nsbox.ok("exec", "ini", "head", "-c", "4", "/proc/2/exe") == "\x7fELF"


def test_exec_and_start_never_expose_host_files(nsbox, secprobe, nsbox_env):
    """A container process watching /proc/*/exe and /proc/*/fd/* while 100 `nsbox exec`s land in its
    pid namespace (and, through a pod sharing it, containers start there) never opens a host
    file: every process nsbox puts there is non-dumpable and holds no host fd until its exec."""
    py = _host_python()
    state_dev = os.stat(nsbox_env["base"]).st_dev
    nsbox.ok("pod", "create", "--name", "wp", "--share", "pid,ipc,uts,net")
    nsbox.ok("run", "-d", "--pod", "wp", "--name", "watcher", "-v", f"{secprobe}:/probe:ro", "busybox",
             "/probe/secprobe", "watch", "/tmp/stop", str(state_dev), str(py.st_dev), str(py.st_ino),
             "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
    assert wait_for(lambda: "ready" in nsbox("logs", "watcher").stdout)
    for i in range(100):
        nsbox.ok("exec", "watcher", "true", input="")
        if i % 10 == 0:
            nsbox.ok("run", "--rm", "--pod", "wp", "busybox", "true", input="")
    nsbox.ok("exec", "watcher", "touch", "/tmp/stop", input="")
    assert nsbox.ok("wait", "watcher").strip() == "0"
    logs = nsbox.ok("logs", "watcher")
    assert "scans=" in logs and "found=0" in logs, logs
    assert "HOST" not in logs, logs
