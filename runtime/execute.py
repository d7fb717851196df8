"""`exec`: a new process inside a running container's namespaces, cgroup, user and capabilities.

The CLI forks a single-threaded child (setns(mnt) refuses threaded callers) that joins the
cgroup, setns()es into ipc, uts, net, pid and mnt (mnt last: it resets root and cwd), and forks
once more so the process really lands in the pid namespace. Errors come back over a CLOEXEC
pipe exactly as they do from the container init.
"""
from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass, field

from nsbox.runtime import init as I
from nsbox.runtime import linux as L
from nsbox.runtime.errors import CannotInvoke, CommandNotFound, Conflict, NsboxError


@dataclass
class ExecRequest:
    args: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    privileged: bool = False
    console_size: tuple[int, int] | None = None


def _child(cfg: dict, pid1: int, req: ExecRequest, err_w: int, con_sock: socket.socket | None,
           bpf: bytes | None) -> None:
    sc = L.RealSyscalls()
    spec = cfg["Spec"]
    try:
        # Before anything joins the container: non-dumpable, so the process that lands in its pid
        # namespace (forked below, inheriting this) never shows the container a /proc/PID/exe (the
        # host's python) or /proc/PID/fd/* it could open; and no fd of the CLI's goes in with us.
        sc.prctl(L.PR_SET_DUMPABLE, 0)
        signal.set_wakeup_fd(-1)
        sc.close_fds_except(err_w, con_sock.fileno() if con_sock is not None else -1)
        from nsbox.runtime.cgroups import get_driver
        try:
            get_driver().open(spec["linux"]["cgroupsPath"]).join_self()
        except Exception as e:  # the container's cgroup is gone: it is not running any more
            raise I.InitError("cgroup", f"joining the container's cgroup: {e}") from None
        fds = {}
        kinds = ("ipc", "uts", "net", "pid", "mnt") + (("user",) if spec["linux"].get("uidMappings") else ())
        for t in kinds:
            try:
                fds[t] = os.open(f"/proc/{pid1}/ns/{t}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise I.InitError("namespaces", f"container is not running: {e.strerror}") from None
        for t in ("ipc", "uts", "net", "pid", "mnt"):
            sc.setns(fds[t], 0)
            os.close(fds[t])
        if "user" in fds:  # last: the others belong to the host's user namespace (see idmap.py)
            I.IDMAP.join_userns(sc, fds["user"])
        pid = os.fork()
        if pid != 0:
            os.close(err_w)
            if req.detach:
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)
        # the process, now inside the pid namespace
        proc = spec["process"]
        env = list(proc.get("env", []))
        keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
        for e in req.env:
            kv = e if "=" in e else (f"{e}={os.environ[e]}" if e in os.environ else None)
            if kv is None:
                continue
            k = kv.split("=", 1)[0]
            if k in keys:
                env[keys[k]] = kv
            else:
                env.append(kv)
        if req.tty and con_sock is not None:
            I.setup_console(sc, con_sock.detach(), {"height": req.console_size[0], "width": req.console_size[1]}
                            if req.console_size else None)
        elif req.detach:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
        user = {"username": req.user} if req.user else proc.get("user", {})
        uid, gid, groups, home = I.resolve_user(user)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={home}")
        cwd = req.workdir or proc.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise I.InitError("cwd", f"chdir to cwd (\"{cwd}\") failed: {e.strerror}", 126) from None
        caps = None if req.privileged else proc.get("capabilities")
        if caps is not None:
            want = I._mask(caps.get("bounding", []))
            for c in range(0, I._last_cap() + 1):
                if not want & (1 << c):
                    try:
                        sc.prctl(L.PR_CAPBSET_DROP, c)
                    except OSError:
                        pass
            sc.prctl(8, 1)
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        if caps is not None:
            sc.capset(I._mask(caps.get("effective", [])), I._mask(caps.get("permitted", [])), 0)
        sc.prctl(L.PR_SET_DUMPABLE, 0)  # setuid/capset reset it to fs.suid_dumpable
        if proc.get("noNewPrivileges") and not req.privileged:
            sc.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        if not req.privileged:
            I.apply_seccomp(sc, spec["linux"], bpf)
        for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        sc.close_fds_except(err_w)
        I.exec_or_report(sc, req.args, env)
    except I.InitError as e:
        I.report_error(err_w, e.stage, str(e), e.code)
    except OSError as e:
        I.report_error(err_w, "exec", str(e), 126)
    except Exception as e:
        I.report_error(err_w, "exec", f"{type(e).__name__}: {e}", 126)
    os._exit(126)


def exec_in(cfg: dict, pid1: int, req: ExecRequest, on_pty=None, runroot: str | None = None) -> int:
    """Run req in the container whose PID 1 is pid1; returns the exit code (0 for -d)."""
    if not req.args:
        raise NsboxError("no command specified")
    bpf = None
    if not req.privileged:
        from nsbox.runtime.seccomp_bpf import for_spec
        bpf = for_spec(cfg["Spec"], runroot)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    con_parent = con_child = None
    if req.tty:
        con_parent, con_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            if con_parent is not None:
                con_parent.close()
            _child(cfg, pid1, req, err_w, con_child, bpf)
        finally:
            os._exit(126)
    os.close(err_w)
    master = None
    if con_child is not None:
        con_child.close()
        try:
            _, fds, _, _ = socket.recv_fds(con_parent, 16, 1)
            master = fds[0] if fds else None
        except OSError:
            master = None
        con_parent.close()
    data = b""
    while True:
        chunk = os.read(err_r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(err_r)
    if data:
        os.waitpid(pid, 0)
        if master is not None:
            os.close(master)
        err = json.loads(data.splitlines()[0])
        cls = {126: CannotInvoke, 127: CommandNotFound}.get(int(err.get("code", 126)), CannotInvoke)
        raise cls(err.get("error", "exec failed"))
    if req.detach:
        os.waitpid(pid, 0)
        return 0
    if master is not None and on_pty is not None:
        on_pty(master)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def pty_relay(master: int) -> None:
    """Relay our terminal to a pty master until the other side closes."""
    import select
    from nsbox.runtime.client import RawTerminal, terminal_size
    import fcntl
    import struct
    import termios

    def resize(*_):
        size = terminal_size(0)
        if size:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))

    signal.signal(signal.SIGWINCH, resize)
    stdin_ok = True
    with RawTerminal(0):
        while True:
            fds = [master] + ([0] if stdin_ok else [])
            try:
                r, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    stdin_ok = False
                else:
                    os.write(master, data)
    os.close(master)


__all__ = ["ExecRequest", "exec_in", "pty_relay", "Conflict"]
