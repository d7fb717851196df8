"""The per-container monitor, like conmon.

One small process per running container, started by the CLI and independent of it afterwards:
it creates the container (fork into new namespaces, see init.py), holds its stdio or pty master,
writes the json-file log, serves attach clients, records the exit code and time atomically,
applies the restart policy, and cleans up (cgroup, network, --rm) even with no CLI around.

Run as: python -I -c 'from nsbox.runtime.monitor import main; main()' CID ROOT RUNROOT
with the CLI's end of a sync socketpair on fd 3 and, for an attached CLI, a connected attach socket
on fd 4. The CLI spawns the monitor as early as it can (as soon as the container's record exists),
so the interpreter's start-up overlaps the CLI's own work; the monitor touches nothing until the
CLI says "go" (and exits quietly if the CLI goes away first).
"""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import sys
import time

from nsbox.runtime import attach as A
from nsbox.runtime import linux as L
from nsbox.runtime import state as S
from nsbox.runtime.errors import NsboxError
from nsbox.runtime.fsutil import now_iso, parse_iso
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord

SYNC_FD = 3
ATTACH_FD = 4


class Sync:
    """JSON lines to and from the CLI that started us (gone after the first start)."""

    def __init__(self, fd: int | None):
        self.sock = socket.socket(fileno=fd) if fd is not None else None

    def send(self, **msg) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            self.close()

    def wait_go(self) -> bool:
        """True on "go"; False when the CLI gave up (create failed, start refused, CLI killed)."""
        if self.sock is None:
            return True
        buf = b""
        while b"\n" not in buf:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return False
            if not chunk:
                return False
            buf += chunk
        return b'"go"' in buf

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


class Monitor:
    def __init__(self, paths: Paths, cid: str, sync: Sync, attach_fd: int | None = None):
        self.paths = paths
        self.rec = ContainerRecord(paths, cid)
        self.cfg = self.rec.config()
        self.sync = sync
        self.clients: list[socket.socket] = []
        self.readers: dict[int, A.FrameReader] = {}
        self.listener: socket.socket | None = None
        self.cgroup = None
        self.log = None
        self.tty = bool(self.cfg["Spec"]["process"].get("terminal"))
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.outputs: dict[int, str] = {}
        self.pid = 0
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if attach_fd is not None:  # the CLI that started us, connected before the first byte
            conn = socket.socket(fileno=attach_fd)
            conn.setblocking(True)
            self.clients.append(conn)
            self.readers[conn.fileno()] = A.FrameReader()

    # --- setup -------------------------------------------------------------
    def listen(self) -> None:
        os.makedirs(self.rec.run_dir, exist_ok=True)
        path = self.rec.attach_path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        A.bind(s, path)
        os.chmod(path, 0o600)
        s.listen(16)
        s.setblocking(False)
        self.listener = s

    def open_log(self) -> None:
        from nsbox.runtime.logs import JsonFileWriter
        opts = self.cfg.get("HostConfig", {}).get("LogConfig", {}).get("Config", {})
        max_size = 0
        if opts.get("max-size"):
            from nsbox.runtime.units import ram_in_bytes as parse_bytes
            max_size = parse_bytes(opts["max-size"])
        self.log = JsonFileWriter(self.rec.log_path, max_size, int(opts.get("max-file", 1)))

    def make_cgroup(self):
        # re-read: `nsbox update` may have changed the limits since this monitor started
        try:
            self.cfg["Spec"]["linux"]["resources"] = self.rec.config()["Spec"]["linux"].get("resources") or {}
        except (OSError, ValueError, KeyError):
            pass
        res = self.cfg["Spec"]["linux"].get("resources") or {}
        path = self.cfg["Spec"]["linux"]["cgroupsPath"]
        from nsbox.runtime.cgroups import Resources, get_driver
        drv = get_driver()
        return drv.create(path, Resources.from_dict(res))

    # --- one start of the container ----------------------------------------
    def start_once(self) -> dict | None:
        """Fork the container; returns an error dict, or None once it has exec'd."""
        from nsbox.runtime import init as I

        spec = self.cfg["Spec"]
        sc = L.RealSyscalls()
        try:
            from nsbox.runtime.seccomp_bpf import for_spec
            bpf = for_spec(spec, self.paths.runroot)
        except NsboxError as e:
            return {"stage": "seccomp", "error": str(e), "code": 125}
        try:
            self.cgroup = self.make_cgroup()
        except OSError as e:
            return {"stage": "cgroup", "error": f"cgroup: {e}", "code": 125}

        ns_fds: dict[str, int] = {}
        pid_path = None
        for ns in spec["linux"]["namespaces"]:
            if ns.get("path"):
                try:
                    fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    self._close_all(ns_fds.values())
                    return {"stage": "namespaces", "code": 125,
                            "error": f"joining {ns['type']} namespace {ns['path']}: {e.strerror}"}
                if ns["type"] == "pid":
                    pid_path = fd
                else:
                    ns_fds[ns["type"]] = fd
        new_pid = any(n["type"] == "pid" and not n.get("path") for n in spec["linux"]["namespaces"])
        userns_fd = -1
        if spec["linux"].get("uidMappings"):
            from nsbox.runtime import idmap
            try:  # made (and its maps written) before PID 1 exists; PID 1 joins it last
                userns_fd = idmap.create_userns(sc, spec["linux"]["uidMappings"], spec["linux"]["gidMappings"])
            except OSError as e:
                self._close_all(ns_fds.values())
                return {"stage": "namespaces", "code": 125, "error": f"user namespace: {e.strerror or e}"}

        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # we move the child into its cgroups while it sets itself up, and tell it on this pipe
        cg_r, cg_w = os.pipe2(os.O_CLOEXEC) if self.cgroup is not None else (-1, -1)
        if self.tty:
            con_parent, con_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            errs_r, errs_w = os.pipe2(os.O_CLOEXEC)
            if self.cfg["Config"].get("OpenStdin"):
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
            else:
                in_r, in_w = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), None

        own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        # the child inherits this from its first instant in the container's pid namespace, where a
        # dumpable process would let the container open /proc/PID/exe (the host's python) and
        # /proc/PID/fd/* before the exec; the monitor itself never enters the container
        sc.prctl(L.PR_SET_DUMPABLE, 0)
        try:
            # pid_for_children only: this process stays where it is. Forking into a pid
            # namespace whose init has died fails with ENOMEM, so restore right after the fork.
            if pid_path is not None:
                sc.setns(pid_path, L.CLONE_NEWPID)
            elif new_pid:
                sc.unshare(L.CLONE_NEWPID)
            pid = os.fork()
        except OSError as e:
            sc.setns(own_pidns, L.CLONE_NEWPID)
            return {"stage": "fork", "error": str(e), "code": 125}
        if pid == 0:  # ---- the container
            try:
                signal.set_wakeup_fd(-1)
                for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT,
                          signal.SIGHUP, signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
                    signal.signal(s, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                if self.tty:
                    con_parent.close()
                    null = os.open("/dev/null", os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    console = con_child.detach()
                else:
                    os.dup2(in_r, 0)
                    os.dup2(out_w, 1)
                    os.dup2(errs_w, 2)
                    console = -1
                if cg_w >= 0:
                    os.close(cg_w)
                # nothing of the monitor's (logs, sockets, the host pid namespace) goes in with us
                sc.close_fds_except(err_w, cg_r, console, userns_fd, *ns_fds.values())
                io = I.InitIO(error_fd=err_w, console_sock=console, seccomp=bpf,
                              join_cgroup=(lambda: I.wait_joined(cg_r)) if cg_r >= 0 else None, ns_fds=ns_fds,
                              userns_fd=userns_fd)
                I.run(sc, self.cfg, io)
            finally:
                os._exit(1)
        # ---- the monitor
        sc.setns(own_pidns, L.CLONE_NEWPID)
        os.close(own_pidns)
        if pid_path is not None:
            os.close(pid_path)
        self._close_all(ns_fds.values())
        if userns_fd >= 0:
            os.close(userns_fd)
        os.close(err_w)
        self.pid = pid
        join_error = None
        if self.cgroup is not None:
            os.close(cg_r)
            try:
                self.cgroup.join(pid)
                os.write(cg_w, b"1")
            except Exception as e:  # the child sees EOF and gives up; our message is the better one
                join_error = {"stage": "cgroup", "error": f"cgroup: {e}", "code": 125}
            os.close(cg_w)
        if self.tty:
            con_child.close()
            try:
                _, fds, _, _ = socket.recv_fds(con_parent, 16, 1)
            except OSError:
                fds = []
            con_parent.close()
            if fds:
                self.master = fds[0]
                os.set_blocking(self.master, False)
                self.outputs = {self.master: "stdout"}
        else:
            os.close(out_w)
            os.close(errs_w)
            os.close(in_r)
            self.stdin_w = in_w
            for fd in (out_r, errs_r):
                os.set_blocking(fd, False)
            self.outputs = {out_r: "stdout", errs_r: "stderr"}
        data = b""
        while True:
            try:
                chunk = os.read(err_r, 65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
        os.close(err_r)
        if join_error is not None:
            return join_error
        if data:
            try:
                return json.loads(data.splitlines()[0])
            except ValueError:
                return {"stage": "init", "error": data.decode(errors="replace"), "code": 125}
        return None

    @staticmethod
    def _close_all(fds) -> None:
        for fd in list(fds):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- the relay loop ----------------------------------------------------
    def relay(self) -> int:
        """Move bytes until PID 1 exits; returns its wait status."""
        poller = select.poll()
        for fd in self.outputs:
            poller.register(fd, select.POLLIN)
        poller.register(self.listener.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        for c in self.clients:
            poller.register(c.fileno(), select.POLLIN)
        status = None
        while status is None:
            try:
                events = poller.poll(1000)
            except InterruptedError:
                events = []
            for fd, ev in events:
                if fd == self.wake_r:
                    self._drain_wake()
                elif fd == self.listener.fileno():
                    self._accept(poller)
                elif fd in self.outputs:
                    if not self._read_output(fd):
                        poller.unregister(fd)
                else:
                    self._client_input(fd, poller)
            status = self._reap()
        # the pid namespace is gone with PID 1; take what is left in the pipes
        for fd in list(self.outputs):
            while self._read_output(fd):
                pass
        return status

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid == self.pid:
                return status

    def _accept(self, poller) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setblocking(True)
        self.clients.append(conn)
        self.readers[conn.fileno()] = A.FrameReader()
        poller.register(conn.fileno(), select.POLLIN)

    def _read_output(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO from a pty master once the slave side is gone
            data = b""
        if not data:
            self.outputs.pop(fd, None)
            os.close(fd)
            if fd == self.master:
                self.master = None
            return False
        stream = self.outputs[fd]
        self.log.write(stream, data)
        self.broadcast(A.frame(A.STDOUT if stream == "stdout" else A.STDERR, data))
        return True

    def broadcast(self, data: bytes) -> None:
        for c in list(self.clients):
            try:
                c.sendall(data)
            except OSError:
                self._drop(c)

    def _drop(self, c: socket.socket, poller=None) -> None:
        if c in self.clients:
            self.clients.remove(c)
        self.readers.pop(c.fileno(), None)
        if poller is not None:
            try:
                poller.unregister(c.fileno())
            except KeyError:
                pass
        c.close()

    def _client_input(self, fd: int, poller) -> None:
        conn = next((c for c in self.clients if c.fileno() == fd), None)
        if conn is None:
            return
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn, poller)
            return
        for kind, payload in self.readers[fd].feed(data):
            target = self.master if self.tty else self.stdin_w
            if kind == A.STDIN and target is not None:
                try:
                    os.write(target, payload)
                except OSError:
                    pass
            elif kind == A.STDIN_EOF:
                if self.tty and self.master is not None:
                    pass  # a terminal has no EOF of its own; the user types ^D
                elif self.stdin_w is not None:
                    os.close(self.stdin_w)
                    self.stdin_w = None
            elif kind == A.RESIZE and self.master is not None:
                import fcntl
                import struct
                import termios
                rows, cols = (int(x) for x in payload.split())
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # --- after exit --------------------------------------------------------
    def record_exit(self, status: int | None, error: dict | None) -> S.ContainerState:
        if error is not None:
            code = int(error.get("code", 125))
        else:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
        oom = False
        if self.cgroup is not None:
            try:
                oom = self.cgroup.oom_killed()
            except OSError:
                pass
        with self.rec.lock():
            st = self.rec.load_state()
            st.Status = S.EXITED
            st.ExitCode = code
            st.Error = error.get("error", "") if error else ""
            st.OOMKilled = oom
            st.Pid = 0
            st.PidStart = 0
            st.FinishedAt = now_iso()
            self.rec.try_save_state(st)  # a full disk must not stop the cleanup below
        if oom:
            self.event("oom")
        self.event("die", exitCode=str(code))
        return st

    def event(self, action: str, **attrs) -> None:
        """One line per event in the root's events log (docker events' shape)."""
        from nsbox.runtime import events
        rec = {"status": action, "id": self.rec.id, "Type": "container", "Action": action,
               "Actor": {"ID": self.rec.id, "Attributes": {"name": self.cfg.get("Name", "").lstrip("/"), **attrs}},
               "time": int(time.time()), "timeNano": time.time_ns()}
        events.append(self.paths.root, rec)

    def should_restart(self, st: S.ContainerState, ran_for: float, failures: int) -> bool:
        try:  # re-read: `nsbox update --restart` may have changed the policy while we ran
            self.cfg.setdefault("HostConfig", {})["RestartPolicy"] = self.rec.config()["HostConfig"]["RestartPolicy"]
        except (OSError, ValueError, KeyError):
            pass
        pol = self.cfg.get("HostConfig", {}).get("RestartPolicy", {})
        name = pol.get("Name", "")
        if self.rec.manually_stopped(st) or not name or name == "no" or self.cfg.get("HostConfig", {}).get("AutoRemove"):
            return False
        if name == "on-failure":
            if st.ExitCode == 0:
                return False
            limit = int(pol.get("MaximumRetryCount") or 0)
            return limit == 0 or failures < limit
        return name in ("always", "unless-stopped")

    def release_cgroup(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except OSError:
                pass
            self.cgroup = None

    def final_cleanup(self) -> list:
        """Release what the container held; returns slow deletions to run after the exit frame."""
        from nsbox.runtime import cleanup
        self.release_cgroup()
        later: list = []
        cleanup.teardown(self.paths, self.rec, self.cfg, cgroup_released=True, later=later)
        return later

    # --- main --------------------------------------------------------------
    def run(self) -> None:
        self.listen()
        self.open_log()
        with self.rec.lock():
            st = self.rec.load_state()
            st.MonitorPid = os.getpid()
            st.MonitorStart = S.proc_starttime(os.getpid())
            self.rec.save_state(st)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

        backoff = 0.1
        failures = 0
        while True:
            started = time.monotonic()
            error = self.start_once()
            if error is None:
                with self.rec.lock():
                    st = self.rec.load_state()
                    st.Status = S.RUNNING
                    st.Pid = self.pid
                    st.PidStart = S.proc_starttime(self.pid)
                    st.StartedAt = now_iso()
                    st.ExitCode = 0
                    st.Error = ""
                    st.OOMKilled = False
                    self.rec.save_state(st)
                self.event("start")
                self.sync.send(started=self.pid)
                self.sync.close()
                status = self.relay()
                st = self.record_exit(status, None)
            else:
                if self.pid:
                    try:
                        os.waitpid(self.pid, 0)
                    except ChildProcessError:
                        pass
                st = self.record_exit(None, error)
                self.sync.send(error=error.get("error", "start failed"), code=int(error.get("code", 125)))
                self.sync.close()
            self.pid = 0
            ran_for = time.monotonic() - started
            if error is None and self.should_restart(st, ran_for, failures):
                failures += 1
                if ran_for >= 10:  # docker resets the backoff after a healthy run
                    backoff = 0.1
                self.release_cgroup()
                if not self.wait_restart(backoff):
                    break
                backoff = min(backoff * 2, 60.0)
                continue
            break
        self.log.close()
        later = self.final_cleanup()
        st = self.rec.load_state() if self.rec.exists() else st
        self.broadcast(A.frame(A.EXIT, json.dumps({"code": st.ExitCode}).encode()))
        for c in list(self.clients):
            self._drop(c)
        try:
            os.unlink(self.rec.attach_path)
        except OSError:
            pass
        for job in later:  # --rm: the record is gone already; its files go now
            try:
                job()
            except OSError:
                pass

    def wait_restart(self, delay: float) -> bool:
        """Sit in 'restarting' for the backoff; False when someone stopped us meanwhile."""
        with self.rec.lock():
            st = self.rec.load_state()
            if self.rec.manually_stopped(st):
                return False
            st.Status = S.RESTARTING
            st.RestartCount += 1
            self.rec.save_state(st)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if self.rec.manually_stopped(self.rec.load_state()):
                with self.rec.lock():
                    st = self.rec.load_state()
                    st.Status = S.EXITED
                    self.rec.save_state(st)
                return False
        return True


def main() -> None:
    cid, root, runroot = sys.argv[1:4]
    try:
        L.RealSyscalls().prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass
    for s in (signal.SIGPIPE, signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    def fd_or_none(fd: int) -> int | None:
        try:
            os.fstat(fd)
            return fd
        except OSError:
            return None

    sync = Sync(fd_or_none(SYNC_FD))
    if not sync.wait_go():
        os._exit(0)  # nothing was started and nothing is ours to clean
    mon = Monitor(Paths(root, runroot), cid, sync, fd_or_none(ATTACH_FD))
    try:
        mon.run()
    except Exception as e:  # leave a trace and a truthful state, never a 'running' ghost
        import traceback
        traceback.print_exc()
        try:
            with mon.rec.lock():
                st = mon.rec.load_state()
                if st.Status in (S.RUNNING, S.CREATED, S.RESTARTING) and not S.alive(st.Pid, st.PidStart):
                    st.Status = S.EXITED
                    st.ExitCode = st.ExitCode or 125
                    st.Error = f"monitor: {e}"
                    mon.rec.save_state(st)
        except OSError:
            pass
        mon.sync.send(error=f"monitor: {e}", code=125)
        os._exit(1)
    os._exit(0)


class Handle:
    """The CLI's side of a monitor it started: sync socket, attach socket, and how to wait for it.

    A monitor forked by the preload server is not our child: we hold a pidfd to wait on instead.
    """

    def __init__(self, pid: int, sync: socket.socket, attach: socket.socket | None, pidfd: int | None = None):
        self.pid, self.sync, self.attach, self.pidfd = pid, sync, attach, pidfd

    def wait(self) -> None:
        if self.pidfd is None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            return
        try:
            select.select([self.pidfd], [], [])
        finally:
            os.close(self.pidfd)
            self.pidfd = None

    def reap_if_done(self) -> None:
        if self.pidfd is None:
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            os.close(self.pidfd)
            self.pidfd = None

    def abort(self) -> None:
        """Before "go": the monitor sees EOF and exits without touching anything."""
        for s in (self.sync, self.attach):
            if s is not None:
                s.close()
        self.wait()


# Set once, in a worker of the preload server (runtime/preload.py): monitors are then forked from the
# server's warm interpreter, sharing its pages, instead of starting an interpreter of their own.
FORK_SERVER: str | None = None


def spawn(paths: Paths, cid: str, attach: bool = False) -> Handle:
    """Start the monitor for `cid` in its own session; it waits for "go" on the sync socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a_ours = a_theirs = None
    if attach:
        a_ours, a_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    rec = ContainerRecord(paths, cid)
    os.makedirs(rec.run_dir, exist_ok=True)
    errlog = os.path.join(rec.dir, "monitor.log")
    if FORK_SERVER:
        h = _fork_from_server(FORK_SERVER, [cid, paths.root, paths.runroot], errlog, theirs, a_theirs)
        if h is not None:
            return Handle(h[0], ours, a_ours, h[1])
    argv = [sys.executable, "-I", "-c", "from nsbox.runtime.monitor import main; main()", cid, paths.root,
            paths.runroot]
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, errlog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, theirs.fileno(), SYNC_FD),
    ]
    if a_theirs is not None:
        actions.append((os.POSIX_SPAWN_DUP2, a_theirs.fileno(), ATTACH_FD))
    try:
        pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    finally:
        theirs.close()
        if a_theirs is not None:
            a_theirs.close()
    return Handle(pid, ours, a_ours)


def _fork_from_server(server: str, args: list[str], errlog: str, sync, attach) -> tuple[int, int] | None:
    """Ask the preload server to fork the monitor; (pid, pidfd), or None to spawn one ourselves."""
    from nsbox.runtime.preload import caller_context, request
    fds = [sync.fileno()] + ([attach.fileno()] if attach is not None else [])
    ctx = {**caller_context(os.getpid()), "env": dict(os.environ)}
    try:
        conn, reply = request(server, {"op": "monitor", "args": args, "log": errlog, "ctx": ctx}, fds)
    except (OSError, ValueError, EOFError):
        return None
    conn.close()
    if "pid" not in reply:
        return None
    pid = reply["pid"]
    try:
        pidfd = os.pidfd_open(pid)  # it waits for "go", so this pid is still the monitor's
    except OSError:
        return None
    sync.close()
    if attach is not None:
        attach.close()
    return pid, pidfd


__all__ = ["main", "spawn", "Handle", "Monitor", "errno", "parse_iso"]
