"""The preload server (runtime/preload.py) and the thin client (cli/entry.py), for real.

Every other test runs through the server too; these check what is particular to it: who forks
what, what the client hands over, and when the client must fall back to the in-process CLI.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from nsbox_testlib import NSBOX_BIN, wait_for

NONE = ("--network", "none")


def server_pid(runroot: str) -> int | None:
    try:
        with open(os.path.join(runroot, "preload.pid")) as f:
            pid = int(f.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def server_log(runroot: str) -> str:
    try:
        with open(os.path.join(runroot, "preload.log")) as f:
            return f.read()[-3000:]
    except OSError as e:
        return f"no server log: {e}"


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


@pytest.fixture
def warm(nsbox, nsbox_env):
    """A running server for this run's runroot."""
    nsbox.ok("version")
    assert wait_for(lambda: server_pid(nsbox_env["runroot"]), timeout=30), "no preload server started"
    nsbox.ok("run", "--rm", *NONE, "busybox", "true")
    return server_pid(nsbox_env["runroot"])


def test_monitors_are_forked_from_the_server(nsbox, warm, nsbox_env):
    cid = nsbox.ok("run", "-d", *NONE, "busybox", "sleep", "60").strip()
    pid = nsbox.inspect(cid)["State"]["Pid"]
    monitor = ppid(pid)
    assert cmdline(monitor).startswith(f"nsbox-monitor {cid}"), server_log(nsbox_env["runroot"])
    assert ppid(monitor) == server_pid(nsbox_env["runroot"])
    nsbox.ok("rm", "-f", cid)


def test_the_server_has_a_primer_that_goes_with_it(warm, nsbox_env):
    runroot = nsbox_env["runroot"]
    primers = [int(d) for d in os.listdir("/proc") if d.isdigit() and _title_is(int(d), f"nsbox-preload-primer {runroot}")]
    assert [ppid(p) for p in primers] == [warm]


def _title_is(pid: int, title: str) -> bool:
    try:
        return cmdline(pid) == title
    except OSError:
        return False


def test_client_hands_over_stdio_env_cwd_and_exit_code(nsbox, warm, tmp_path):
    (tmp_path / "envfile").write_text("FROM_FILE=yes\n")
    r = subprocess.run([NSBOX_BIN, "run", "--rm", "-i", *NONE, "--env-file", "envfile", "-e", "FROM_CLIENT",
                        "busybox", "sh", "-c", 'cat; echo "$FROM_FILE $FROM_CLIENT"; echo oops >&2; exit 7'],
                       cwd=tmp_path, env={**nsbox.env, "FROM_CLIENT": "client-env"}, input="piped\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 7
    assert r.stdout == "piped\nyes client-env\n"
    assert r.stderr == "oops\n"


def test_client_imports_nothing_heavy(nsbox, warm, nsbox_env):
    # the launcher runs with -IS; through a warm server the client needs no click and no engine
    r = subprocess.run([sys.executable, "-IS", "-X", "importtime", NSBOX_BIN, "run", "--rm", *NONE, "busybox",
                        "true"], env=nsbox.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    imported = r.stderr
    assert "nsbox.cli.entry" in imported
    assert " click\n" not in imported, server_log(nsbox_env["runroot"])
    for heavy in ("click", "nsbox.runtime", "pyroute2", "json"):
        assert f" {heavy}\n" not in imported and f" {heavy}." not in imported, heavy


def test_signals_reach_the_worker(nsbox, warm):
    p = nsbox.popen("run", "--rm", *NONE, "busybox", "sh", "-c", "trap 'exit 42' TERM; echo up; "
                    "while :; do sleep 0.1; done", stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    p.send_signal(signal.SIGTERM)  # the client forwards it; the CLI proxies it to the container
    assert p.wait(timeout=60) == 42


def test_killing_the_client_kills_its_worker(nsbox, warm, nsbox_env):
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    p = nsbox.popen("run", "--rm", *NONE, "--name", marker, "busybox", "sleep", "300",
                    stdout=subprocess.DEVNULL)
    srv = server_pid(nsbox_env["runroot"])

    def worker():
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if cmdline(int(d)).startswith("nsbox run") and marker in cmdline(int(d)):
                        return int(d)
                except OSError:
                    pass
        return None
    w = wait_for(worker, timeout=30)
    assert w and ppid(w) == srv, (cmdline(w), server_log(nsbox_env["runroot"]))
    # the worker lives as long as the container it is attached to: kill once that is running (a kill
    # in the middle of create would leave no container, rightly)
    assert wait_for(lambda: nsbox("inspect", marker).returncode == 0
                    and nsbox.inspect(marker)["State"]["Running"], timeout=60)
    p.kill()  # like kill -9 of a CLI: its worker goes too, the container stays
    p.wait()
    assert wait_for(lambda: not os.path.exists(f"/proc/{w}") or _zombie(w), timeout=30)
    assert nsbox.inspect(marker)["State"]["Running"]
    nsbox.ok("rm", "-f", marker)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_caller_in_another_mount_namespace_runs_in_process(nsbox, warm):
    r = subprocess.run(["unshare", "-m", NSBOX_BIN, "run", "--rm", *NONE, "busybox", "echo", "fine"],
                       env={**nsbox.env, "NSBOX_DEBUG": "1"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "fine\n"
    assert "declined: namespace mnt differs" in r.stderr


def test_stale_code_makes_a_new_server(nsbox, warm, nsbox_env):
    from nsbox.runtime import units
    src = units.__file__
    st = os.stat(src)
    try:
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
        seen = []

        def declined_as_stale():  # the server looks at most once a second
            r = nsbox("run", "--rm", *NONE, "busybox", "echo", "still works", env={"NSBOX_DEBUG": "1"})
            assert r.returncode == 0 and r.stdout == "still works\n", r.stderr
            seen.append(r.stderr)
            # a loaded machine may have had a new server (with the new stamp) answer already
            return "stale" in r.stderr or server_pid(nsbox_env["runroot"]) not in (None, warm)
        assert wait_for(declined_as_stale, timeout=30, step=0.3), seen[-3:]
    finally:
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert wait_for(lambda: server_pid(nsbox_env["runroot"]) not in (None, warm), timeout=30)


def test_server_exits_when_idle(nsbox, tmp_path):
    runroot = str(tmp_path / "run")
    env = {"NSBOX_RUNROOT": runroot, "NSBOX_PRELOAD_IDLE": "0.5"}
    try:
        nsbox.ok("version", env=env)  # in-process; starts this runroot's server
        pid = wait_for(lambda: server_pid(runroot), timeout=30)
        assert pid
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=30)
        assert not os.path.exists(os.path.join(runroot, "preload.sock"))
    finally:
        from nsbox.runtime.preload import stop_server
        stop_server(runroot)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_ctrl_z_stops_the_worker_with_the_client(nsbox, warm):
    name = f"tstp-{os.getpid()}-{time.monotonic_ns()}"
    # a process group of its own in our session, as a shell's job: the kernel ignores SIGTSTP in an
    # orphaned group (ours may be one, under CI), and so would the client's own stop
    p = nsbox.popen("run", "--rm", *NONE, "--name", name, "busybox", "sh", "-c", "echo up; sleep 300",
                    stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        assert p.stdout.readline() == "up\n"
        # the worker is titled after the command: "nsbox run --rm ..."
        title = "nsbox " + cmdline(p.pid).split("/nsbox ", 1)[1]
        w = wait_for(lambda: next((int(d) for d in os.listdir("/proc") if d.isdigit() and _title_is(int(d), title)),
                                  None), timeout=30)
        assert w, "no worker found for the client"
        p.send_signal(signal.SIGTSTP)  # what ctrl-z sends the terminal's foreground job
        assert wait_for(lambda: _state(p.pid) == "T" and _state(w) == "T", timeout=30)
        p.send_signal(signal.SIGCONT)  # fg
        assert wait_for(lambda: _state(p.pid) not in ("T", "t") and _state(w) not in ("T", "t"), timeout=30)
    finally:
        p.send_signal(signal.SIGCONT)
        nsbox("rm", "-f", name)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()  # the server then kills its worker
            p.wait()


BACKGROUND_JOB = """
import os, sys
os.setsid()
tty = os.open(sys.argv[1], os.O_RDWR)  # a session leader's first terminal becomes its own
os.tcsetpgrp(tty, os.getpgrp())
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)  # a job in the background, as `nsbox ... &` in a shell
    os.dup2(tty, 0)
    os.execv(sys.argv[2], sys.argv[2:])
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_background_job_on_a_terminal_runs_in_process(nsbox, warm):
    # in-process, the kernel's job control guards the terminal; a worker would read it regardless
    master, slave = os.openpty()
    try:
        r = subprocess.run([sys.executable, "-c", BACKGROUND_JOB, os.ttyname(slave), NSBOX_BIN, "run", "-d", *NONE,
                            "busybox", "sleep", "60"], env=nsbox.env, capture_output=True, text=True, timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    monitor = ppid(nsbox.inspect(cid)["State"]["Pid"])
    assert "nsbox.runtime.monitor" in cmdline(monitor)  # spawned by an in-process CLI
    nsbox.ok("rm", "-f", cid)


def test_purge_stops_a_server_that_is_still_starting(tmp_path):
    from nsbox.runtime.preload import spawn_server, stop_server
    runroot = str(tmp_path / "run")

    def servers():
        return [int(d) for d in os.listdir("/proc") if d.isdigit() and _server_of(int(d), runroot)]
    spawn_server(runroot)
    assert wait_for(servers, timeout=30)  # caught before it wrote a pid file, most likely
    stop_server(runroot)
    assert wait_for(lambda: not servers(), timeout=30)


def _server_of(pid: int, runroot: str) -> bool:
    from nsbox.runtime.preload import _is_server_of
    return _is_server_of(pid, runroot) and not _zombie(pid)


def test_client_says_so_when_server_and_worker_vanish(nsbox, warm, nsbox_env):
    name = f"gone-{os.getpid()}-{time.monotonic_ns()}"
    p = nsbox.popen("run", "--rm", *NONE, "--name", name, "busybox", "sh", "-c", "echo up; sleep 300",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        title = "nsbox " + cmdline(p.pid).split("/nsbox ", 1)[1]
        w = wait_for(lambda: next((int(d) for d in os.listdir("/proc") if d.isdigit() and _title_is(int(d), title)),
                                  None), timeout=30)
        assert w
        os.kill(warm, signal.SIGKILL)  # the server first: nobody is left to report the worker's end
        os.kill(w, signal.SIGKILL)
        assert p.wait(timeout=60) == 125
        assert "preload server went away" in p.stderr.read()
    finally:
        nsbox("rm", "-f", name)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_caller_the_server_cannot_match_runs_in_process(nsbox, tmp_path):
    # a server started under a lower hard limit cannot raise a worker's to the caller's (root lacks
    # CAP_SYS_RESOURCE here): the worker declines before running anything, the client runs it itself
    from nsbox.runtime.preload import stop_server
    runroot = str(tmp_path / "run")
    env = {"NSBOX_RUNROOT": runroot}
    try:
        r = subprocess.run(["prlimit", "--nofile=256:256", NSBOX_BIN, "version"], env={**nsbox.env, **env},
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: server_pid(runroot), timeout=30)
        r = nsbox("version", env={**env, "NSBOX_DEBUG": "1"})
        assert r.returncode == 0 and "nsbox version" in r.stdout
        assert "declined: cannot take over the caller's context" in r.stderr
    finally:
        stop_server(runroot)
