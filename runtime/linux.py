"""The one place nsbox talks to the kernel through cffi (ABI mode, out-of-line).

Every syscall the container init needs goes through `Syscalls`; `FakeSyscalls`
(runtime/fakesys.py) records the same calls so the init checklist can be unit
tested without root. Paths and strings are kept alive in local `ffi.new`
objects for the whole call (a cast of a temporary buffer can be freed early).
"""
from __future__ import annotations

import errno
import os

from nsbox.runtime._nsffi import ffi

# namespaces
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NS_FLAGS = {
    "mount": CLONE_NEWNS, "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER,
}
# /proc/PID/ns/<file> for each OCI namespace type
NS_PROC_NAME = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "pid": "pid",
                "network": "net", "cgroup": "cgroup", "user": "user"}

# mount flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MNT_DETACH = 2

# prctl
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
PR_SET_DUMPABLE = 4

# x86_64 syscall numbers
SYS_setfsuid = 122
SYS_setfsgid = 123
SYS_pivot_root = 155
SYS_capset = 126
SYS_seccomp = 317
SYS_open_tree = 428
SYS_move_mount = 429
SYS_fsopen = 430
SYS_fsconfig = 431
SYS_fsmount = 432
SYS_mount_setattr = 442
SYS_openat2 = 437

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x00100000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
PR_SET_SECUREBITS = 28
SECBIT_NO_SETUID_FIXUP = 1 << 2

_lib = None


def _libc():
    global _lib  # the dlopen handle is process-wide and immutable; loading it once is not state
    if _lib is None:
        _lib = ffi.dlopen(None)
    return _lib


def _s(value):
    return ffi.NULL if value is None else ffi.new("char[]", os.fsencode(value))


def _check(rc: int, what: str, *detail) -> int:
    if rc == -1:
        err = ffi.errno
        where = f"{what} {' '.join(str(d) for d in detail if d)}".strip()
        raise OSError(err, f"{where}: {os.strerror(err)}")
    return rc


class Syscalls:
    """The real kernel."""

    def unshare(self, flags: int) -> None:
        _check(_libc().unshare(flags), "unshare")

    def setns(self, fd: int, nstype: int = 0) -> None:
        _check(_libc().setns(fd, nstype), "setns")

    def mount(self, source, target, fstype, flags: int = 0, data=None) -> None:
        src, tgt, fs, dat = _s(source), _s(target), _s(fstype), _s(data)
        _check(_libc().mount(src, tgt, fs, flags, dat), "mount", target)

    def umount2(self, target, flags: int = 0) -> None:
        tgt = _s(target)
        _check(_libc().umount2(tgt, flags), "umount", target)

    def pivot_root(self, new_root, put_old) -> None:
        nr, po = _s(new_root), _s(put_old)
        _check(_libc().syscall(SYS_pivot_root, nr, po), "pivot_root")

    def mount_setattr_rdonly(self, path, recursive: bool = True) -> None:
        attr = ffi.new("struct mount_attr *", {"attr_set": MOUNT_ATTR_RDONLY})
        p = _s(path)
        flags = AT_RECURSIVE if recursive else 0
        _check(_libc().syscall(SYS_mount_setattr, ffi.cast("int", AT_FDCWD), p,
                               ffi.cast("unsigned int", flags), attr,
                               ffi.cast("size_t", ffi.sizeof("struct mount_attr"))),
               "mount_setattr", path)

    # --- idmapped mounts: a detached copy of a tree whose ids are shifted by a user namespace
    def open_tree_clone(self, path: str, recursive: bool = False) -> int:
        p = _s(path)
        flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
        return _check(_libc().syscall(SYS_open_tree, ffi.cast("int", AT_FDCWD), p, ffi.cast("unsigned int", flags)),
                      "open_tree", path)

    def mount_setattr_idmap(self, mount_fd: int, userns_fd: int, recursive: bool = False) -> None:
        attr = ffi.new("struct mount_attr *", {"attr_set": MOUNT_ATTR_IDMAP, "userns_fd": userns_fd})
        empty = _s("")
        flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
        _check(_libc().syscall(SYS_mount_setattr, ffi.cast("int", mount_fd), empty, ffi.cast("unsigned int", flags),
                               attr, ffi.cast("size_t", ffi.sizeof("struct mount_attr"))), "mount_setattr", "idmap")

    def setfsids(self, uid: int, gid: int) -> None:
        """The ids new files get; keeps capabilities only under SECBIT_NO_SETUID_FIXUP."""
        _libc().syscall(SYS_setfsgid, ffi.cast("unsigned int", gid))
        _libc().syscall(SYS_setfsuid, ffi.cast("unsigned int", uid))

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return _check(_libc().prctl(option, a2, a3, a4, a5), "prctl", option)

    def sethostname(self, name: str) -> None:
        import socket
        socket.sethostname(name)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = ffi.new("struct cap_header *", {"version": 0x20080522, "pid": 0})  # _LINUX_CAPABILITY_VERSION_3
        data = ffi.new("struct cap_data[2]")
        for i in range(2):
            data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
            data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
        _check(_libc().syscall(SYS_capset, hdr, data), "capset")

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def seccomp_filter(self, bpf: bytes) -> None:
        """Install a compiled seccomp program (struct sock_filter array; no_new_privs or
        CAP_SYS_ADMIN first). The kernel validates it again."""
        n = len(bpf) // 8
        prog = ffi.new("struct sock_filter[]", n)
        ffi.memmove(prog, bpf, n * 8)
        fprog = ffi.new("struct sock_fprog *", {"len": n, "filter": prog})
        _check(_libc().syscall(SYS_seccomp, ffi.cast("unsigned int", 1), ffi.cast("unsigned int", 0),
                               fprog), "seccomp")

    # --- the new mount API: overlay with more lower layers than one page of options allows
    def fsopen(self, fstype: str) -> int:
        fs = _s(fstype)
        return _check(_libc().syscall(SYS_fsopen, fs, ffi.cast("unsigned int", 1)), "fsopen", fstype)

    def fsconfig_string(self, fd: int, key: str, value: str) -> None:
        k, v = _s(key), _s(value)
        _check(_libc().syscall(SYS_fsconfig, ffi.cast("int", fd), ffi.cast("unsigned int", 1), k, v,
                               ffi.cast("int", 0)), "fsconfig", key, value)

    def fsconfig_create(self, fd: int) -> None:
        _check(_libc().syscall(SYS_fsconfig, ffi.cast("int", fd), ffi.cast("unsigned int", 6),
                               ffi.cast("char *", 0), ffi.cast("void *", 0), ffi.cast("int", 0)),
               "fsconfig", "create")

    def fsmount(self, fd: int) -> int:
        return _check(_libc().syscall(SYS_fsmount, ffi.cast("int", fd), ffi.cast("unsigned int", 1),
                                      ffi.cast("unsigned int", 0)), "fsmount")

    def move_mount(self, from_fd: int, target: str) -> None:
        empty, tgt = _s(""), _s(target)
        _check(_libc().syscall(SYS_move_mount, ffi.cast("int", from_fd), empty, ffi.cast("int", AT_FDCWD),
                               tgt, ffi.cast("unsigned int", 4)), "move_mount", target)  # MOVE_MOUNT_F_EMPTY_PATH


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): an fd for path under dirfd, resolved by the kernel as `resolve` says.

    struct open_how is three u64s (flags, mode, resolve); an array of them has the same
    layout, so no cdef change is needed. EAGAIN is the kernel's "a rename raced the lookup,
    try again" for RESOLVE_IN_ROOT/BENEATH; retried a bounded number of times.
    """
    how = ffi.new("uint64_t[3]", [flags | os.O_CLOEXEC, mode, resolve])
    p = ffi.new("char[]", os.fsencode(path))
    for _ in range(64):
        fd = _libc().syscall(SYS_openat2, ffi.cast("int", dirfd), p, how, ffi.cast("size_t", 24))
        if fd != -1:
            return fd
        err = ffi.errno
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def overlay_mount(sc: Syscalls, lowerdirs: list[str], upper: str | None, work: str | None, target: str) -> None:
    """Mount overlayfs; lowerdirs are TOP-first (overlay's leftmost lowerdir is the top layer).

    mount(2) cuts its option string at one page (4096 bytes, a misleading ENOENT), so long
    layer lists go through fsopen/fsconfig("lowerdir+") instead (kernel >= 6.8).
    """
    def esc(p: str) -> str:
        return p.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")

    opts = "lowerdir=" + ":".join(esc(p) for p in lowerdirs)
    if upper:
        opts += f",upperdir={esc(upper)},workdir={esc(work)}"
    if len(opts) < 3800:
        sc.mount("overlay", target, "overlay", 0, opts)
        return
    fd = sc.fsopen("overlay")
    try:
        for d in lowerdirs:
            sc.fsconfig_string(fd, "lowerdir+", d)
        if upper:
            sc.fsconfig_string(fd, "upperdir", upper)
            sc.fsconfig_string(fd, "workdir", work)
        sc.fsconfig_create(fd)
        mfd = sc.fsmount(fd)
        try:
            sc.move_mount(mfd, target)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


class _FileOps:
    """Filesystem and process calls the init makes; kept here so the fake can record them."""

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, mode=0o755, exist_ok=True)

    def touch(self, path: str) -> None:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))

    def mknod(self, path: str, mode: int, dev: int) -> None:
        try:
            os.mknod(path, mode, dev)
        except FileExistsError:
            pass
        os.chmod(path, mode & 0o7777)

    def symlink(self, target: str, path: str) -> None:
        try:
            os.symlink(target, path)
        except FileExistsError:
            pass

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def setuid(self, uid: int) -> None:
        os.setuid(uid)

    def setgid(self, gid: int) -> None:
        os.setgid(gid)

    def openpty(self) -> tuple[int, int]:
        return os.openpty()

    def close_fds_except(self, *keep: int) -> None:
        """Close every fd >= 3 but these (a negative number stands for "none")."""
        low = 3
        for fd in sorted({k for k in keep if k >= 3}):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)

    def execvpe(self, file: str, args: list[str], env: dict) -> None:
        os.execvpe(file, args, env)

    def lo_up(self) -> None:
        """Bring up lo in a fresh network namespace: two ioctls, no netlink library needed."""
        import fcntl
        import socket
        import struct
        SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = struct.pack("16sH14x", b"lo", 0)  # struct ifreq: name, then ifr_flags in the union
            flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


class RealSyscalls(Syscalls, _FileOps):
    """Everything the init needs, against the real kernel."""
