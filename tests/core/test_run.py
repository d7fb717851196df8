"""run/create: output, exit codes, flags, and docker's ENTRYPOINT/CMD rules in real containers."""
import json
import os

import pytest

pytestmark = pytest.mark.vm

NONE = ("--network", "none")


def test_hello(nsbox):
    r = nsbox("run", "--rm", *NONE, "busybox", "echo", "hello")
    assert (r.returncode, r.stdout) == (0, "hello\n")
    assert nsbox.ok("ps", "-aq") == ""


def test_stdout_and_stderr_are_kept_apart(nsbox):
    r = nsbox("run", "--rm", *NONE, "busybox", "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n" and r.stderr == "err\n"


@pytest.mark.parametrize("cmd,code", [
    (["sh", "-c", "exit 3"], 3),
    (["nosuchcmd"], 127),
    (["/etc/passwd"], 126),
    (["sh", "-c", "kill -KILL $$ & sleep 5"], 0),   # PID 1 ignores signals from inside: like docker
])
def test_exit_codes(nsbox, cmd, code):
    r = nsbox("run", "--rm", *NONE, "busybox", *cmd)
    assert r.returncode == code, r.stderr
    if code in (126, 127):
        assert len(r.stderr.strip().splitlines()) == 1
    assert nsbox.ok("ps", "-aq") == ""


def test_killed_by_signal_gives_128_plus_n(nsbox):
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "60").strip()
    nsbox.ok("kill", "-s", "TERM", cid)  # PID 1 without a handler ignores TERM
    nsbox.ok("kill", cid)
    assert nsbox.ok("wait", cid).strip() == "137"
    assert nsbox.inspect(cid)["State"]["ExitCode"] == 137


def test_unknown_image_is_125(nsbox):
    r = nsbox("run", "--rm", *NONE, "nosuchimage:1", "true")
    assert r.returncode == 125 and "No such image" in r.stderr
    assert nsbox.ok("ps", "-aq") == ""


def test_bad_flag_is_125(nsbox):
    r = nsbox("run", "--frobnicate", "busybox", "true")
    assert r.returncode == 125


def test_entrypoint_and_cmd(nsbox):
    r = nsbox("run", "--rm", *NONE, "--entrypoint", "echo", "busybox", "a", "b")
    assert r.stdout == "a b\n"
    r = nsbox("run", "--rm", *NONE, "--entrypoint", "", "busybox", "echo", "reset")
    assert r.stdout == "reset\n"


def test_env_workdir_user_hostname(nsbox, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("FROM_FILE=1\n# c\nBOTH=file\n")
    r = nsbox("run", "--rm", *NONE, "-e", "A=b", "--env-file", envf, "-e", "BOTH=flag", "-w", "/tmp/newdir",
              "-u", "nobody", "--hostname", "myhost", "busybox", "sh", "-c",
              'echo $A $FROM_FILE $BOTH; pwd; id -u; hostname; cat /etc/hostname; echo $HOME')
    assert r.stdout.split("\n")[:6] == ["b 1 flag", "/tmp/newdir", "65534", "myhost", "myhost", "/home"], r.stderr


def test_default_hostname_is_short_id(nsbox):
    cid = nsbox.ok("create", *NONE, "busybox", "hostname").strip()
    nsbox.ok("start", cid)
    nsbox.ok("wait", cid)
    assert nsbox.ok("logs", cid).strip() == cid[:12]


def test_user_uid_gid(nsbox):
    r = nsbox("run", "--rm", *NONE, "-u", "1234:5678", "busybox", "id")
    assert "uid=1234" in r.stdout and "gid=5678" in r.stdout
    r = nsbox("run", "--rm", *NONE, "-u", "nosuchuser", "busybox", "id")
    assert r.returncode != 0 and "unable to find user nosuchuser" in r.stderr


def test_labels_and_inspect_shape(nsbox):
    cid = nsbox.ok("create", "--name", "lbl", *NONE, "-l", "a=1", "--label", "b", "--stop-signal", "SIGUSR1",
                   "--stop-timeout", "3", "busybox", "true").strip()
    info = nsbox.inspect("lbl")
    assert info["Id"] == cid and info["Name"] == "/lbl"
    assert info["Config"]["Labels"] == {"a": "1", "b": ""}
    assert info["Config"]["StopSignal"] == "SIGUSR1" and info["Config"]["StopTimeout"] == 3
    assert info["State"]["Status"] == "created" and info["State"]["Running"] is False
    for key in ("Pid", "ExitCode", "OOMKilled", "StartedAt", "FinishedAt", "Paused"):
        assert key in info["State"]
    assert "RestartCount" in info and "HostConfig" in info and "Mounts" in info


def test_tmpfs_and_read_only(nsbox):
    r = nsbox("run", "--rm", *NONE, "--read-only", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
              "touch /x 2>&1; touch /scratch/ok && echo scratch-ok; grep scratch /proc/mounts")
    assert "Read-only file system" in r.stdout and "scratch-ok" in r.stdout and "tmpfs" in r.stdout


def test_interactive_stdin(nsbox):
    r = nsbox("run", "--rm", "-i", *NONE, "busybox", "sh", "-c", "cat; echo done", input="piped\n")
    assert r.stdout == "piped\ndone\n"


def test_init_reaps_and_forwards(nsbox):
    r = nsbox("run", "--rm", *NONE, "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo")
    assert "python" in r.stdout or "init" in r.stdout
    cid = nsbox.ok("run", "-d", *NONE, "--init", "busybox", "sleep", "60").strip()
    nsbox.ok("stop", "-t", "10", cid)  # TERM is forwarded to sleep, which dies of it
    assert nsbox.inspect(cid)["State"]["ExitCode"] == 143


def test_create_then_start_attach(nsbox):
    cid = nsbox.ok("create", *NONE, "busybox", "echo", "attached").strip()
    r = nsbox("start", "-a", cid)
    assert r.returncode == 0 and r.stdout == "attached\n"
    r = nsbox("start", "-a", cid)  # a second start runs it again
    assert r.stdout == "attached\n"
