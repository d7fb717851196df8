"""The preloaded nsbox: one warm interpreter per runroot that CLI commands and monitors are forked from.

Why: a Python CLI pays ~40 ms of imports on every start and each container's monitor another
interpreter; runc pays neither. This server imports nsbox once (pyroute2 included), freezes the
heap (gc.freeze, so children do not dirty the shared pages by collecting them) and then forks:

* `run` requests from the thin client (cli/entry.py): a worker with the client's argv, environment,
  stdio (passed as fds), cwd, umask and rlimits runs the ordinary CLI (cli/main.py); its exit status
  goes back to the client, which exits with it. The client forwards its signals to the worker.
* `monitor` requests from a worker (runtime/monitor.spawn): a container monitor, so all monitors
  share this interpreter's pages instead of each carrying its own.

Everything here is an optimisation: the client falls back to running the CLI in-process whenever the
server is missing, stale (nsbox's code changed), or the caller differs from it in a way a fork cannot
carry over (other namespaces, root directory, credentials, capabilities, seccomp).

Files in the runroot: preload.sock (0600, SOCK_SEQPACKET), preload.lock (flock held for life: one
server per runroot), preload.pid and preload.log. The server exits after NSBOX_PRELOAD_IDLE seconds
(default 600) with nothing to do, when its socket is removed, or when purge_root stops it.
"""
from __future__ import annotations

import errno
import fcntl
import gc
import marshal
import os
import select
import signal
import socket
import struct
import sys
import time

SOCK, LOCK, PIDFILE, LOG = "preload.sock", "preload.lock", "preload.pid", "preload.log"
TITLE = "nsbox-preload"
MAX_MSG = 1 << 20
# whatever a run needs at once; build and registry code load on demand in the worker
PRELOAD = (
    "nsbox.cli.main", "nsbox.cli.common", "nsbox.cli.container", "nsbox.cli.format", "nsbox.cli.pod",
    "nsbox.cli.image", "nsbox.cli.network", "nsbox.cli.resources", "nsbox.cli.volume", "nsbox.cli.system",
    "nsbox.runtime.engine", "nsbox.runtime.monitor", "nsbox.runtime.init", "nsbox.runtime.seccomp",
    "nsbox.runtime.seccomp_bpf", "nsbox.runtime.userns",
    "nsbox.runtime.create", "nsbox.runtime.specgen", "nsbox.runtime.client", "nsbox.runtime.logs",
    "nsbox.runtime.execute", "nsbox.runtime.pods", "nsbox.runtime.volumes", "nsbox.runtime.netglue",
    "nsbox.runtime.cgroups", "nsbox.runtime.cgroups.v1", "nsbox.runtime.cgroups.v2",
    "nsbox.runtime.cgroups.stats", "nsbox.runtime.units", "nsbox.runtime.resources_ops", "nsbox.runtime.views",
    "nsbox.network.api", "nsbox.network.container", "nsbox.network.links", "nsbox.image.store",
    "nsbox.image.registry", "pyroute2", "resource",
)
# what a fork must share with its caller (compared through /proc/<pid>/...)
SAME_NS = ("mnt", "pid", "net", "uts", "ipc", "cgroup", "user", "time")
SAME_STATUS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
RLIMITS = {  # /proc/<pid>/limits row -> resource number (resource's RLIMIT_*)
    "Max cpu time": 0, "Max file size": 1, "Max data size": 2, "Max stack size": 3, "Max core file size": 4,
    "Max resident set": 5, "Max processes": 6, "Max open files": 7, "Max locked memory": 8,
    "Max address space": 9, "Max file locks": 10, "Max pending signals": 11, "Max msgqueue size": 12,
    "Max nice priority": 13, "Max realtime priority": 14, "Max realtime timeout": 15,
}


def paths_in(runroot: str) -> dict[str, str]:
    return {k: os.path.join(runroot, v) for k, v in
            (("sock", SOCK), ("lock", LOCK), ("pid", PIDFILE), ("log", LOG))}


# --- what a forked child takes over from its caller ------------------------------------------------

def caller_context(pid: int) -> dict:
    """The parts of a process's state a fork must reproduce: umask and rlimits (read from /proc)."""
    ctx: dict = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                ctx["umask"] = int(line.split()[1], 8)
    limits = []
    with open(f"/proc/{pid}/limits") as f:
        next(f)
        for line in f:
            name = line[:26].strip()
            if name in RLIMITS:
                soft, hard = line[26:47].split()[0], line[47:68].split()[0]
                inf = -1  # resource.RLIM_INFINITY
                limits.append((RLIMITS[name], inf if soft == "unlimited" else int(soft),
                               inf if hard == "unlimited" else int(hard)))
    ctx["rlimits"] = limits
    return ctx


def apply_context(ctx: dict) -> None:
    import resource
    if "umask" in ctx:
        os.umask(ctx["umask"])
    for res, soft, hard in ctx.get("rlimits", ()):
        if resource.getrlimit(res) != (soft, hard):
            resource.setrlimit(res, (soft, hard))  # may fail (raising needs CAP_SYS_RESOURCE): caller falls back
    if "env" in ctx:
        os.environ.clear()
        os.environ.update(ctx["env"])


def _own_identity() -> tuple[dict, tuple, dict]:
    """Our namespaces, root directory and credentials, to compare callers with."""
    ns = {}
    for name in SAME_NS:
        try:
            ns[name] = _ident(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            pass  # kernel without that namespace
    return ns, _ident("/"), _status("self")


def _status(p) -> dict:
    with open(f"/proc/{p}/status") as f:
        return {k: v for k, _, v in (line.partition(":") for line in f) if k in SAME_STATUS}


def other_namespaces(pid: int, own: tuple | None = None) -> str | None:
    """Which namespace (or root directory) of `pid` differs from ours, or None."""
    own = own or _own_identity()
    for ns, ident in own[0].items():
        if _ident(f"/proc/{pid}/ns/{ns}") != ident:
            return f"namespace {ns} differs"
    if _ident(f"/proc/{pid}/root/") != own[1]:
        return "root directory differs"
    return None


def incompatible(pid: int, own: tuple | None = None) -> str | None:
    """Why a process forked from us could not stand in for `pid`, or None."""
    try:
        own = own or _own_identity()
        why = other_namespaces(pid, own)
        if why:
            return why
        if _status(pid) != own[2]:
            return "credentials differ"
    except OSError as e:
        return f"cannot inspect the caller: {e}"
    return None


def _ident(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _place(mapping: dict[int, int]) -> None:
    """dup2 each source fd onto its target, safe when sources and targets overlap."""
    high = {t: fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 64) for t, src in mapping.items()}
    for t, h in high.items():
        os.dup2(h, t)  # the target is inheritable again
        os.close(h)


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
              signal.SIGWINCH):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _title(text: str) -> None:
    try:
        import setproctitle
        setproctitle.setproctitle(text)
    except ImportError:  # cosmetic: ps shows the server's command line instead
        pass


def _send(sock: socket.socket, **msg) -> None:
    try:
        sock.send(marshal.dumps(msg))
    except OSError:
        pass


# --- the children ------------------------------------------------------------------------------------

def _worker(conn: socket.socket, req: dict, fds: list[int], peer: int) -> None:
    """A CLI command on behalf of the client; never returns."""
    code = 125
    try:
        _reset_signals()
        try:
            os.chdir(f"/proc/{peer}/cwd")
            apply_context({**caller_context(peer), "env": req["env"]})
            time.tzset()  # the caller's TZ, for the few local times the CLI prints
        except (OSError, ValueError) as e:
            _send(conn, fallback=f"cannot take over the caller's context: {e}")
            os._exit(0)
        # stdio: the client's own descriptors, so terminals, pipes and redirections behave the same
        stdio = req["stdio"]
        _place({n: fds[i] for i, n in enumerate(stdio)})
        for n in (0, 1, 2):
            if n not in stdio:
                os.close(n)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        _reopen_std_streams()
        argv = list(req["argv"])
        sys.argv = ["nsbox", *argv]
        _title("nsbox " + " ".join(argv)[:200])
        from nsbox.runtime import monitor
        monitor.FORK_SERVER = req["server"]
        from nsbox.cli.main import run
        prof = os.environ.get("NSBOX_PROFILE")  # bench/run.py --profile: cProfile this worker
        if prof:
            import cProfile
            pr = cProfile.Profile()
            try:
                code = pr.runcall(run, argv)
            finally:
                pr.dump_stats(prof)
        else:
            code = run(argv)
    except BaseException:  # a bug in the worker: say so like an uncaught exception would
        import traceback
        traceback.print_exc()
        code = 125
    from nsbox.cli.main import flush_stdio
    flush_stdio()
    # answer before the exit: the client need not wait for this big process to be torn down and
    # reaped. Closing stdio first keeps output ordered before the client's exit.
    for n in (0, 1, 2):
        try:
            os.close(n)
        except OSError:
            pass
    _send(conn, exit=code & 0xFF)
    os._exit(code & 0xFF)


def _reopen_std_streams() -> None:
    """New sys.std* on the client's fds, buffered as Python would have chosen for them."""
    import io
    enc = sys.stdout.encoding if sys.stdout else "utf-8"
    def wrap(fd: int, mode: str, errors: str, line: bool):
        try:
            os.fstat(fd)
        except OSError:
            return None
        raw = io.FileIO(fd, mode, closefd=False)
        buf = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buf, encoding=enc, errors=errors, line_buffering=line,
                                write_through=(mode == "w" and fd == 2))
    sys.stdin = sys.__stdin__ = wrap(0, "r", "strict", False)
    sys.stdout = sys.__stdout__ = wrap(1, "w", "strict", os.isatty(1))  # False for a closed fd
    sys.stderr = sys.__stderr__ = wrap(2, "w", "backslashreplace", True)


def _monitor(req: dict, fds: list[int]) -> None:
    """A container monitor (runtime/monitor.py) forked from the warm heap; never returns."""
    try:
        _reset_signals()
        os.setsid()
        os.chdir("/")
        apply_context(req["ctx"])
        null = os.open("/dev/null", os.O_RDWR)
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        from nsbox.runtime import monitor
        want = {0: null, 1: null, 2: log, monitor.SYNC_FD: fds[0]}
        if len(fds) > 1:
            want[monitor.ATTACH_FD] = fds[1]
        _place(want)
        os.closerange(max(want) + 1, 1 << 20)  # nothing of the server's survives in a monitor
        _reopen_std_streams()
        sys.argv = ["nsbox-monitor", *req["args"]]
        _title("nsbox-monitor " + " ".join(req["args"]))
        monitor.main()
    except BaseException:
        import traceback
        traceback.print_exc()
    os._exit(1)


def _primer_target() -> str | None:
    """cgroup.procs of the cgroup this process is in (unified hierarchy first)."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, ctrl, path in lines:
        if ctrl == "":
            for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                p = f"{base}{path.rstrip('/')}/cgroup.procs"
                if os.path.exists(p):
                    return p
    for _, ctrl, path in lines:
        if ctrl and not ctrl.startswith("name="):
            p = f"/sys/fs/cgroup/{ctrl.split(',')[0]}{path.rstrip('/')}/cgroup.procs"
            if os.path.exists(p):
                return p
    return None


def _primer(fd: int, runroot: str) -> None:
    """Opens the kernel's cgroup-migration window ahead of a container start; never returns.

    Moving a task between cgroups takes a global lock whose first writer waits out an RCU grace
    period (~15 ms here); writers within about a grace period after that do not wait. Each byte
    from the server (a `run` or `start` just arrived) makes us move ourselves into the cgroup we
    are already in (a no-op) a few times, so the wait happens while the command parses and builds
    the container, and the monitor's real migration of PID 1 later finds the window open.
    """
    _title(f"{TITLE}-primer {runroot}")
    _reset_signals()
    target = _primer_target()
    if target is None:
        os._exit(0)
    while True:
        try:
            got = os.read(fd, 64)
        except InterruptedError:
            continue
        if not got:
            os._exit(0)  # the server is gone
        for _ in range(4):
            try:
                wfd = os.open(target, os.O_WRONLY)
                try:
                    os.write(wfd, b"0")
                finally:
                    os.close(wfd)
            except OSError:
                os._exit(0)
            time.sleep(0.008)


def _spare(sock: socket.socket, kind: str, runroot: str) -> None:
    """A child forked ahead of need: waits for one request from the server, then becomes a
    worker or a monitor. Takes the fork off the command's critical path. Never returns."""
    try:
        _reset_signals()
        _title(f"{TITLE}-spare {runroot}")
        data, anc, _, _ = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(16 * 4))
    except OSError:
        os._exit(0)
    if not data:
        os._exit(0)  # the server stopped listening or went away
    fds: list[int] = []
    for level, typ, payload in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
    sock.close()
    msg = marshal.loads(data)
    if kind == "run":
        _worker(socket.socket(fileno=fds[0]), msg["req"], fds[1:], msg["peer"])
    else:
        _monitor(msg["req"], fds)
    os._exit(1)


# --- the server ----------------------------------------------------------------------------------------

class Server:
    def __init__(self, runroot: str, idle: float):
        self.files = paths_in(runroot)
        self.runroot, self.idle = runroot, idle
        self.workers: dict[int, socket.socket] = {}  # worker pid -> its client's connection
        self.listener: socket.socket | None = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.code_stamp: dict[str, int] = {}
        self.last = time.monotonic()
        self.checked = 0.0
        self.sock_ino = None
        self.lock_fd = -1
        self.primer_w = -1
        self.spares: dict[str, tuple[int, socket.socket]] = {}  # "run"/"monitor" -> (pid, our end)
        self.own: tuple | None = None

    def _stamp(self) -> dict[str, int]:
        """mtimes of nsbox's loaded modules and package folders: a change means we run stale code."""
        out = {}
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) if name.startswith("nsbox") else None
            if f:
                for p in (f, os.path.dirname(f)):
                    try:
                        out[p] = os.stat(p).st_mtime_ns
                    except OSError:
                        out[p] = -1
        return out

    def stale(self) -> bool:
        now = time.monotonic()
        if now - self.checked < 1.0:  # ~100 stats: at most once a second, not per request
            return False
        self.checked = now
        for p, m in self.code_stamp.items():
            try:
                if os.stat(p).st_mtime_ns != m:
                    return True
            except OSError:
                return True
        return False

    def start(self) -> bool:
        os.makedirs(self.runroot, mode=0o700, exist_ok=True)
        self.lock_fd = os.open(self.files["lock"], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another server has this runroot
        log = os.open(self.files["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.dup2(log, 2)
        os.close(log)
        _title(f"{TITLE} {self.runroot}")
        os.chdir("/")  # never pin the first caller's directory (workers chdir to their caller's)
        for name in PRELOAD:
            try:
                __import__(name)
            except ImportError as e:
                print(f"preload: {name}: {e}", file=sys.stderr)
        self.code_stamp = self._stamp()
        gc.collect()
        gc.freeze()  # children never walk (and so never copy) the preloaded heap
        r, w = os.pipe2(os.O_CLOEXEC)
        if os.fork() == 0:
            os.close(w)
            for fd in (self.wake_r, self.wake_w, self.lock_fd):
                os.close(fd)
            _primer(r, self.runroot)
        os.close(r)
        os.set_blocking(w, False)
        self.primer_w = w
        self.own = _own_identity()
        try:
            os.unlink(self.files["sock"])
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            s.bind(self.files["sock"])
        finally:
            os.umask(old)
        s.listen(128)
        self.listener = s
        self.sock_ino = os.stat(self.files["sock"]).st_ino
        tmp = self.files["pid"] + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, self.files["pid"])
        return True

    def still_ours(self) -> bool:
        try:
            return os.stat(self.files["sock"]).st_ino == self.sock_ino
        except OSError:
            return False

    def stop_listening(self) -> None:
        if self.listener is None:
            return
        if self.still_ours():
            for k in ("sock", "pid"):
                try:
                    os.unlink(self.files[k])
                except OSError:
                    pass
        self.listener.close()
        self.listener = None
        for _, ours in self.spares.values():
            ours.close()  # they see EOF and exit
        self.spares.clear()
        os.close(self.lock_fd)  # a new server may start while our last workers finish

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        term = False
        self.refill()
        while self.listener is not None or self.workers:
            for fd, ev in poller.poll(5000):
                try:
                    if self.listener is not None and fd == self.listener.fileno():
                        self.accept(poller)
                    elif fd == self.wake_r:
                        try:
                            term |= signal.SIGTERM in os.read(self.wake_r, 512)
                        except BlockingIOError:
                            pass
                        self.reap(poller)
                    else:
                        self.client_event(fd, poller)
                except Exception as e:  # never lose the workers' exit codes over one bad event
                    print(f"preload: event on fd {fd}: {e!r}", file=sys.stderr)
            if self.listener is not None:
                quiet = not self.workers and time.monotonic() - self.last > self.idle
                if term or quiet or not self.still_ours():
                    poller.unregister(self.listener)
                    self.stop_listening()
            if term:
                break  # purge: leave running workers to finish on their own
            self.refill()

    def accept(self, poller) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last = time.monotonic()
        try:
            self.handle(conn, poller)
        except Exception as e:
            print(f"preload: request failed: {e!r}", file=sys.stderr)
            _send(conn, fallback=f"preload server: {e}")
            conn.close()

    def handle(self, conn: socket.socket, poller) -> None:
        conn.settimeout(2)
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        data, anc, _, _ = conn.recvmsg(MAX_MSG, socket.CMSG_SPACE(8 * 4))
        fds: list[int] = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
        try:
            req = marshal.loads(data)
            why = None if uid == 0 else "caller is not root"
            respawn = False
            if why is None and self.stale():
                why, respawn = "stale: nsbox's code changed since the server started", True
                poller.unregister(self.listener)
                self.stop_listening()
            if why is None:
                why = incompatible(pid, self.own)
                if why and why.startswith(("namespace", "root")) and not self.workers and self.listener:
                    # started from `unshare -m` or the like: an idle server makes way for the
                    # caller's own, rather than turning every caller from the main namespaces away
                    respawn = True
                    poller.unregister(self.listener)
                    self.stop_listening()
            if why:
                print(f"preload: declined pid {pid} ({req.get('op')}): {why}", file=sys.stderr)
                _send(conn, fallback=why, respawn=respawn)
                conn.close()
                return
            op = req.get("op")
            if op == "run" and req.get("verb") in ("run", "start", "restart"):
                try:
                    os.write(self.primer_w, b"x")
                except OSError:
                    pass
            if op == "run":
                self.fork_worker(conn, req, fds, pid, poller)
            elif op == "monitor":
                child = self.hand_to_spare("monitor", {"req": req}, fds)
                if child is None:
                    child = self.fork(lambda: _monitor(req, fds), None)
                _send(conn, pid=child)
                conn.close()
            else:
                _send(conn, fallback=f"unknown request {op!r}")
                conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def hand_to_spare(self, kind: str, msg: dict, fds: list[int]) -> int | None:
        """Pass a request to the spare of that kind; its pid, or None (no spare, or it died)."""
        spare = self.spares.pop(kind, None)
        if spare is None:
            return None
        pid, ours = spare
        try:
            ours.sendmsg([marshal.dumps(msg)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                 struct.pack(f"{len(fds)}i", *fds))])
            return pid
        except OSError:
            return None
        finally:
            ours.close()

    def refill(self) -> None:
        """Fork the spares used since the last round (while the command they took runs)."""
        if self.listener is None:
            return
        for kind in ("run", "monitor"):
            if kind not in self.spares:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                pid = self.fork(lambda: _spare(theirs, kind, self.runroot), None, also_close=ours)
                theirs.close()
                self.spares[kind] = (pid, ours)

    def fork(self, child, conn: socket.socket | None, also_close: socket.socket | None = None) -> int:
        pid = os.fork()
        if pid == 0:
            # the child keeps only what it was forked for
            keep = conn.fileno() if conn is not None else -1
            spare_ends = [ours for _, ours in self.spares.values()]
            for s in [self.listener, *self.workers.values(), *spare_ends, also_close]:
                if s is not None and s.fileno() != keep:
                    os.close(s.fileno())
            for fd in (self.wake_r, self.wake_w, self.lock_fd, self.primer_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            child()
            os._exit(1)
        return pid

    def fork_worker(self, conn: socket.socket, req: dict, fds: list[int], peer: int, poller) -> None:
        req = {**req, "server": self.files["sock"]}
        conn.settimeout(None)
        pid = self.hand_to_spare("run", {"req": req, "peer": peer}, [conn.fileno(), *fds])
        if pid is None:
            pid = self.fork(lambda: _worker(conn, req, fds, peer), conn)
        self.workers[pid] = conn
        _send(conn, pid=pid)
        poller.register(conn, select.POLLIN)

    def client_event(self, fd: int, poller) -> None:
        """The client wrote or hung up: it only ever goes away (killed), so the worker goes too."""
        for pid, conn in self.workers.items():
            if conn.fileno() == fd:
                try:
                    gone = conn.recv(16, socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    poller.unregister(fd)
                    try:
                        os.kill(pid, signal.SIGKILL)  # like kill -9 of an in-process CLI
                    except ProcessLookupError:
                        pass
                return
        try:
            poller.unregister(fd)  # already closed and forgotten (e.g. the listener, just now)
        except KeyError:
            pass

    def reap(self, poller) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.workers.pop(pid, None)
            if conn is None:
                continue  # a monitor: its exits are its own business
            code = os.waitstatus_to_exitcode(status)
            _send(conn, exit=code if code >= 0 else 128 - code)
            try:
                poller.unregister(conn)
            except KeyError:
                pass
            conn.close()
            self.last = time.monotonic()


def main() -> None:
    """python -I -c 'from nsbox.runtime.preload import main; main()' RUNROOT"""
    runroot = sys.argv[1]
    idle = float(os.environ.get("NSBOX_PRELOAD_IDLE") or 600)
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    srv = Server(runroot, idle)
    try:
        if srv.start():
            srv.serve()
    except Exception:
        import traceback
        traceback.print_exc()
    os._exit(0)


# --- the other side, for workers and the CLI -----------------------------------------------------------

def request(sock_path: str, msg: dict, fds: list[int], timeout: float = 5) -> tuple[socket.socket, dict]:
    """Connect, send one request with `fds`, return the connection and the first reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendmsg([marshal.dumps(msg)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                  if fds else [])
        data = s.recv(MAX_MSG)
        if not data:
            raise ConnectionError("the preload server closed the connection")
        return s, marshal.loads(data)
    except BaseException:
        s.close()
        raise


def spawn_server(runroot: str) -> None:
    """Start a server for `runroot` in the background (it exits at once if one is already there).

    A server lives in the namespaces of the caller that started it; when callers from other
    namespaces come, an idle server makes way for theirs (see Server.handle).
    """
    argv = [sys.executable, "-I", "-c", "from nsbox.runtime.preload import main; main()", runroot]
    actions = [(os.POSIX_SPAWN_OPEN, n, "/dev/null", os.O_RDWR, 0) for n in (0, 1, 2)]
    try:
        os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    except OSError:
        pass


def stop_server(runroot: str, timeout: float = 5) -> None:
    """For purge_root: stop this runroot's server. Found by its command line, not only by the pid
    it records, so that one still starting (no pid file yet) goes too; its helpers exit with it."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _is_server_of(int(d), runroot):
            pids.append(int(d))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if not _zombie_or_gone(p)]
        if pids:
            time.sleep(0.02)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_server_of(pid: int, runroot: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return False
    # titled, or still the interpreter's command line (spawn_server's) before it titles itself
    return cmd == f"{TITLE} {runroot}" or (f"{__name__} import main" in cmd and cmd.endswith(" " + runroot))


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


__all__ = ["main", "request", "spawn_server", "stop_server", "paths_in", "caller_context", "incompatible",
           "errno"]
