"""The container init: the checklist PID 1 runs between fork and exec, in a fixed order.

Like runc's standard_init_linux.go: namespaces, mount propagation, rootfs, mounts, hostname,
sysctls, pivot_root, read-only and masked paths, console, user, capabilities, no_new_privs,
close fds, exec. Every kernel call goes through `sc` (runtime/linux.Syscalls, or the recording
FakeSyscalls in unit tests). Errors are written as one JSON line to the error pipe, which the
monitor turns into the CLI's error; a successful exec closes the pipe (O_CLOEXEC) with no data.

Nothing here may import after pivot_root (the host's Python library is gone by then), so all
modules are imported at the top.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import sys
import socket
import stat
import struct
import termios
from dataclasses import dataclass, field

from nsbox.runtime import caps as C
from nsbox.runtime import idmap as IDMAP
from nsbox.runtime import linux as L
from nsbox.runtime.defaults import DEFAULT_PATH, DEVICES


class InitError(Exception):
    def __init__(self, stage: str, msg: str, code: int = 125):
        super().__init__(msg)
        self.stage = stage
        self.code = code


@dataclass
class InitIO:
    """What the monitor hands to the child."""
    error_fd: int                       # write end of the CLOEXEC error pipe
    console_sock: int = -1              # with a tty: send the pty master here
    # callable: returns once this process is in its cgroups, raises InitError if it never will be.
    # The monitor moves us in while we build namespaces and mounts (a migration waits out an RCU
    # grace period, ~15 ms here); we wait for it before anything that forks or execs.
    join_cgroup: object = None
    ns_fds: dict = field(default_factory=dict)  # namespace type -> fd opened by the monitor (setns targets)
    # the seccomp program, compiled by the monitor: libseccomp is out of reach after pivot_root
    seccomp: bytes | None = None
    userns_fd: int = -1                 # the container's user namespace, made by the monitor (idmap.py)


def wait_joined(fd: int) -> None:
    """The monitor writes b"1" once it has moved us into our cgroups; EOF means it could not."""
    while True:
        try:
            got = os.read(fd, 1)
            break
        except InterruptedError:
            continue
    os.close(fd)
    if got != b"1":
        raise InitError("cgroup", "the monitor could not move the container into its cgroups")


def report_error(fd: int, stage: str, msg: str, code: int) -> None:
    data = json.dumps({"stage": stage, "error": msg, "code": code}).encode() + b"\n"
    try:
        os.write(fd, data)
    except OSError:
        pass


def run(sc, cfg: dict, io: InitIO) -> None:
    """Never returns: execs the container process or exits 1 after reporting an error."""
    try:
        _init(sc, cfg, io)
    except InitError as e:
        report_error(io.error_fd, e.stage, str(e), e.code)
    except OSError as e:
        report_error(io.error_fd, "init", str(e), 125)
    except Exception as e:  # a bug must still reach the user as an error, not a hang
        report_error(io.error_fd, "init", f"{type(e).__name__}: {e}", 125)
    os._exit(1)


def _init(sc, cfg: dict, io: InitIO) -> None:
    spec = cfg["Spec"]
    linux = spec.get("linux", {})
    proc = spec["process"]

    # 1. cgroups: the monitor is moving us in meanwhile; we wait for it at 11a, or here when a
    #    cgroup namespace must be rooted at our own cgroup
    join = io.join_cgroup
    if join is not None and any(n["type"] == "cgroup" for n in linux.get("namespaces", [])):
        join()
        join = None

    # 2. namespaces: join the given ones (fds opened by the monitor), create the rest.
    #    pid was handled by the monitor before fork; mount goes last so paths still resolve.
    flags = 0
    for ns in linux.get("namespaces", []):
        t = ns["type"]
        if t in ("pid", "user"):  # user: joined last, see idmap.py
            continue
        if t in io.ns_fds:
            sc.setns(io.ns_fds[t], L.NS_FLAGS[t])
        elif ns.get("path"):
            raise InitError("namespaces", f"namespace {t} path {ns['path']} was not opened")
        else:
            flags |= L.NS_FLAGS[t]
    if flags:
        sc.unshare(flags)
        if flags & L.CLONE_NEWNET:
            sc.lo_up()
    for fd in io.ns_fds.values():
        os.close(fd)

    # 3. propagation: private before anything else, or mounts leak to the host (and pivot_root fails)
    sc.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)

    # 4. rootfs
    rootfs = cfg["RootfsPath"]
    plan = cfg["Rootfs"]
    userns = io.userns_fd
    if userns >= 0:
        mount_rootfs_idmapped(sc, plan, rootfs, userns, IDMAP.userns_root(linux))
    elif plan["kind"] == "overlay":
        L.overlay_mount(sc, plan["lowerdirs"], plan["upper"], plan["work"], rootfs)
    else:
        sc.mount(plan["rootfs"], rootfs, None, L.MS_BIND | L.MS_REC)

    # 5. mounts, in spec order (proc, dev, sys... then the user's)
    for m in spec.get("mounts", []):
        do_mount(sc, rootfs, m, userns, IDMAP.userns_root(linux))
    if "/dev" in [m["destination"] for m in spec.get("mounts", [])]:
        populate_dev(sc, rootfs, linux.get("devices"))

    # 6. hostname (our own uts namespace only)
    if spec.get("hostname") and any(n["type"] == "uts" and not n.get("path") for n in linux.get("namespaces", [])):
        sc.sethostname(spec["hostname"])

    # 7. sysctls, before /proc/sys turns read-only
    for key, value in (linux.get("sysctl") or {}).items():
        path = os.path.join(rootfs, "proc/sys", key.replace(".", "/"))
        try:
            sc.write_file(path, str(value))
        except OSError as e:
            raise InitError("sysctl", f"sysctl {key}={value}: {e.strerror}") from None

    # 8. pivot_root(".", ".") needs no put_old directory and works on a read-only rootfs
    sc.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.umount2(".", L.MNT_DETACH)
    sc.chdir("/")

    # 9. read-only root, read-only and masked paths
    if spec.get("root", {}).get("readonly"):
        sc.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC)
    for p in linux.get("readonlyPaths", []):
        readonly_path(sc, p)
    for p in linux.get("maskedPaths", []):
        mask_path(sc, p)

    # 10. console or plain stdio
    if proc.get("terminal"):
        setup_console(sc, io.console_sock, proc.get("consoleSize"),
                      IDMAP.userns_root(linux) if userns >= 0 else None)

    # 11a. in our cgroups before user code can run or fork (no join race)
    if join is not None:
        join()

    # 11. user, working dir, env
    env = list(proc.get("env", []))
    uid, gid, groups, home = resolve_user(proc.get("user", {}))
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    if not any(e.startswith("PATH=") for e in env):
        env.append(f"PATH={DEFAULT_PATH}")
    if proc.get("oomScoreAdj") is not None:
        sc.write_file("/proc/self/oom_score_adj", str(proc["oomScoreAdj"]))

    # 11b. into the container's user namespace, as its root (everything host-owned is done)
    if userns >= 0:
        IDMAP.join_userns(sc, userns)

    cwd = proc.get("cwd") or "/"
    try:
        sc.makedirs(cwd)
        sc.chdir(cwd)
    except OSError as e:
        raise InitError("cwd", f"chdir to cwd (\"{cwd}\") set in config.json failed: {e.strerror}", 126) from None

    # 12. capabilities: drop the bounding set while we still have CAP_SETPCAP, keep caps across
    #     setuid, then set the final sets. A non-root user's caps vanish at execve, as in docker.
    caps = proc.get("capabilities")
    if caps is not None:
        want = 0
        for n in caps.get("bounding", []):
            want |= 1 << _capnum(n)
        for c in range(0, _last_cap() + 1):
            if not want & (1 << c):
                try:
                    sc.prctl(L.PR_CAPBSET_DROP, c)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
        sc.prctl(8, 1)  # PR_SET_KEEPCAPS
    sc.setgroups(groups)
    sc.setgid(gid)
    sc.setuid(uid)
    if not proc.get("noNewPrivileges"):
        # without no_new_privs the kernel wants CAP_SYS_ADMIN to install a filter: do it before capset
        apply_seccomp(sc, linux, io.seccomp)
    if caps is not None:
        eff = _mask(caps.get("effective", []))
        sc.capset(eff, _mask(caps.get("permitted", [])), 0)
    # 12a. still non-dumpable (inherited from the monitor): setuid/capset reset it to
    #      fs.suid_dumpable, which a host may set to 1, and a dumpable process's /proc/PID/exe
    #      (the host's python) and fds are open to the container until exec
    sc.prctl(L.PR_SET_DUMPABLE, 0)
    if proc.get("noNewPrivileges"):
        sc.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        apply_seccomp(sc, linux, io.seccomp)

    args = proc.get("args") or []
    if not args:
        raise InitError("exec", "no command specified")

    # 13. all fds >= 3 closed (the error pipe is O_CLOEXEC and closes at exec)
    sc.close_fds_except(io.error_fd)

    if cfg.get("HostConfig", {}).get("Init"):
        tiny_init(sc, args, env, io.error_fd)
    exec_or_report(sc, args, env)


def apply_seccomp(sc, linux: dict, bpf: bytes | None) -> None:
    """Last before exec: the filter also binds this Python process until it execs."""
    if not linux.get("seccomp"):
        return
    if not bpf:  # fail closed: never run a confined container without its filter
        raise InitError("seccomp", "the seccomp filter was not compiled")
    sc.seccomp_filter(bpf)


def exec_or_report(sc, args: list[str], env: list[str]) -> None:
    envd = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    try:
        sc.execvpe(args[0], args, envd)
    except FileNotFoundError:
        if "/" in args[0]:
            raise InitError("exec", f'exec: "{args[0]}": stat {args[0]}: no such file or directory', 127) from None
        raise InitError("exec", f'exec: "{args[0]}": executable file not found in $PATH', 127) from None
    except PermissionError:
        raise InitError("exec", f'exec: "{args[0]}": permission denied', 126) from None
    except OSError as e:
        raise InitError("exec", f'exec: "{args[0]}": {e.strerror.lower()}', 126) from None


def tiny_init(sc, args: list[str], env: list[str], error_fd: int) -> None:
    """--init: stay PID 1, run the command as a child, forward signals, reap every zombie."""
    title = sys.modules.get("setproctitle")  # loaded when forked from the preload server
    if title is not None:
        title.setproctitle("nsbox-init -- " + " ".join(args))  # not the monitor's host paths
    child = os.fork()
    if child == 0:
        for s in range(1, signal.NSIG):
            try:
                signal.signal(s, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        try:
            exec_or_report(sc, args, env)
        except InitError as e:
            report_error(error_fd, e.stage, str(e), e.code)
        os._exit(1)
    os.close(error_fd)

    def forward(sig, _frame):
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT):
        signal.signal(s, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _capnum(name: str) -> int:
    return C.NUMBER[name[4:] if name.startswith("CAP_") else name]


def _mask(names) -> int:
    m = 0
    for n in names:
        m |= 1 << _capnum(n)
    return m


def _last_cap() -> int:
    return C.last_cap()


def resolve_user(user: dict) -> tuple[int, int, list[int], str]:
    """uid, gid, supplementary gids and home, from the container's own /etc/passwd and /etc/group."""
    spec = user.get("username", "")
    if not spec:
        return int(user.get("uid", 0)), int(user.get("gid", 0)), [], "/root"
    name, _, group = spec.partition(":")
    passwd = _read_db("/etc/passwd")
    uid = gid = None
    home = "/"
    entry = None
    for f in passwd:
        if len(f) >= 4 and (f[0] == name or (name.isdigit() and f[2] == name)):
            entry = f
            break
    if entry is not None:
        uid, gid = int(entry[2]), int(entry[3])
        home = entry[5] if len(entry) > 5 and entry[5] else "/"
        uname = entry[0]
    elif name.isdigit():
        uid, gid, uname = int(name), 0, None
    else:
        raise InitError("user", f"unable to find user {name}: no matching entries in passwd file")
    groups_db = _read_db("/etc/group")
    if group:
        for f in groups_db:
            if len(f) >= 3 and (f[0] == group or (group.isdigit() and f[2] == group)):
                gid = int(f[2])
                break
        else:
            if not group.isdigit():
                raise InitError("user", f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    extra = []
    if uname:
        for f in groups_db:
            if len(f) >= 4 and uname in f[3].split(","):
                extra.append(int(f[2]))
    return uid, gid, sorted(set(extra) - {gid}) or ([] if uid else [gid]), home


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, "r", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


# --- mounts ---------------------------------------------------------------

_FLAG_OPTS = {
    "ro": (L.MS_RDONLY, True), "rw": (L.MS_RDONLY, False), "nosuid": (L.MS_NOSUID, True),
    "suid": (L.MS_NOSUID, False), "nodev": (L.MS_NODEV, True), "dev": (L.MS_NODEV, False),
    "noexec": (L.MS_NOEXEC, True), "exec": (L.MS_NOEXEC, False), "bind": (L.MS_BIND, True),
    "rbind": (L.MS_BIND | L.MS_REC, True), "relatime": (L.MS_RELATIME, True), "noatime": (L.MS_NOATIME, True),
}
_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}


def parse_options(options: list[str]) -> tuple[int, list[str]]:
    flags, data = 0, []
    for o in options:
        if o in _FLAG_OPTS:
            bit, on = _FLAG_OPTS[o]
            flags = flags | bit if on else flags & ~bit
        elif o in _PROPAGATION or o in ("z", "Z") or o.startswith("nsbox-"):
            continue
        else:
            data.append(o)
    return flags, data


def safe_join(rootfs: str, dest: str, _hops: int = 0) -> str:
    """Resolve dest inside rootfs, following symlinks as if rootfs were / (no escape)."""
    parts = [p for p in dest.split("/") if p and p != "."]
    cur = rootfs
    for i, p in enumerate(parts):
        if p == "..":
            if cur != rootfs:
                cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, p)
        if os.path.islink(nxt):
            # the count runs across the recursion: a link loop (or a chain longer than the
            # kernel's 40) must fail, never be taken as a plain name the host then follows
            if _hops >= 40:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links: {dest}")
            target = os.readlink(nxt)
            rest = "/".join(parts[i + 1:])
            base = "" if target.startswith("/") else os.path.relpath(cur, rootfs)
            return safe_join(rootfs, os.path.join("/", base, target, rest), _hops + 1)
        cur = nxt
    return cur


def mount_rootfs_idmapped(sc, plan: dict, rootfs: str, userns_fd: int, root: tuple[int, int]) -> None:
    try:
        if plan.get("idshift") == "chown":  # already owned by the container's host ids
            sc.mount(plan["rootfs"], rootfs, None, L.MS_BIND | L.MS_REC)
        elif plan["kind"] == "overlay":
            IDMAP.overlay_idmapped(sc, plan, rootfs, userns_fd, root)
        else:
            IDMAP.bind_idmapped(sc, plan["rootfs"], rootfs, userns_fd)
    except OSError as e:
        raise InitError("rootfs", f"idmapped rootfs for the user namespace: {e.strerror}") from None


def do_mount(sc, rootfs: str, m: dict, userns_fd: int = -1, root: tuple[int, int] = (0, 0)) -> None:
    dest = safe_join(rootfs, m["destination"])
    mtype = m.get("type", "bind")
    options = m.get("options", [])
    flags, data = parse_options(options)
    source = m.get("source", mtype)
    is_bind = bool(flags & L.MS_BIND) or mtype == "bind"
    if is_bind:
        flags |= L.MS_BIND
        idmapped = userns_fd >= 0 and "nsbox-idmap" in options
        if "nsbox-chown" in options:  # a user namespace without idmapped mounts (idmap.py)
            if "nsbox-copyup" in options:
                copy_up(rootfs, m["destination"], source)
            IDMAP.claim_volume(source, root)
        elif "nsbox-copyup" in options:
            copy_up(rootfs, m["destination"], source, root if idmapped else (0, 0))
        IDMAP.make_target(sc, dest, os.path.isdir(source), userns_fd, root)
        if idmapped:
            IDMAP.bind_idmapped(sc, source, dest, userns_fd)
        else:
            sc.mount(source, dest, None, L.MS_BIND | (flags & L.MS_REC))
        # MS_BIND|MS_RDONLY in one call is silently read-write: remount the bind
        rest = flags & (L.MS_RDONLY | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
        if rest:
            sc.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | rest)
            if flags & L.MS_RDONLY and flags & L.MS_REC:
                sc.mount_setattr_rdonly(dest, True)
    else:
        IDMAP.make_target(sc, dest, True, userns_fd, root)
        sc.mount(source, dest, mtype, flags, ",".join(data) or None)
    for o in options:
        if o in _PROPAGATION:
            p = {"private": L.MS_PRIVATE, "slave": L.MS_SLAVE, "shared": L.MS_SHARED}[o.lstrip("r")]
            sc.mount(None, dest, None, p | (L.MS_REC if o.startswith("r") else 0))


def copy_up(rootfs: str, destination: str, volume_dir: str, shift: tuple[int, int] = (0, 0)) -> None:
    """A fresh named volume takes the image's content at its mount point, as docker does.

    Read through runtime/inroot.py: the mount point and everything below it resolve inside
    the rootfs, so an image's absolute symlinks never copy host files into the volume.
    shift: the host ids of the container's root when the rootfs is seen through its user
    namespace's idmapping; the volume (idmapped too) then stores the container's own ids."""
    from nsbox.runtime import inroot
    vfd = os.open(volume_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.listdir(vfd):
            return
        with inroot.Root.at(rootfs) as root:
            try:
                src = root.locate(destination, follow=True)
            except OSError:
                return   # no such directory in the image: nothing to copy
            with src:
                if src.st is None or not stat.S_ISDIR(src.st.st_mode):
                    return
                unshift = lambda u, g: (max(u - shift[0], 0), max(g - shift[1], 0))  # noqa: E731
                inroot.copy_children(src, vfd, inroot.CopyOptions(keep_owner=True, map_ids=unshift), destination)
                os.fchown(vfd, max(src.st.st_uid - shift[0], 0), max(src.st.st_gid - shift[1], 0))
                os.fchmod(vfd, stat.S_IMODE(src.st.st_mode))
    finally:
        os.close(vfd)


def populate_dev(sc, rootfs: str, devices: list | None) -> None:
    dev = os.path.join(rootfs, "dev")
    old = os.umask(0)
    try:
        for path, kind, major, minor, mode in DEVICES:
            sc.mknod(os.path.join(rootfs, path.lstrip("/")), mode | stat.S_IFCHR, os.makedev(major, minor))
        for d in devices or []:
            t = stat.S_IFBLK if d["type"] == "b" else stat.S_IFCHR
            sc.mknod(os.path.join(rootfs, d["path"].lstrip("/")), (d.get("fileMode") or 0o660) | t,
                     os.makedev(d["major"], d["minor"]))
    finally:
        os.umask(old)
    for src, name in (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                      ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx")):
        sc.symlink(src, os.path.join(dev, name))
    if os.path.exists("/proc/kcore"):
        sc.symlink("/proc/kcore", os.path.join(dev, "core"))


def readonly_path(sc, path: str) -> None:
    if not os.path.exists(path):
        return
    sc.mount(path, path, None, L.MS_BIND | L.MS_REC)
    sc.mount(None, path, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)


def mask_path(sc, path: str) -> None:
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        sc.mount("tmpfs", path, "tmpfs", L.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, L.MS_BIND)


def setup_console(sc, console_sock: int, size: dict | None, owner: tuple[int, int] | None = None) -> None:
    """Open the pty from the container's own devpts and send the master to the monitor.

    owner: host ids of the container's root, which must own the terminal it will use."""
    master, slave = sc.openpty()
    if owner is not None:
        os.fchown(slave, owner[0], -1)
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(size.get("height", 24)), int(size.get("width", 80)), 0, 0))
    socket.send_fds(socket.socket(fileno=console_sock), [b"m"], [master])
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
