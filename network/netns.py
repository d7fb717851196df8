"""Persistent network namespaces: bind-mounted nsfs files at paths.netns_dir/<cid>.

The namespace is made in a forked child (unshare in the caller would move the caller itself, see
landmines §3); the child bind-mounts its /proc/self/ns/net onto the file and brings lo up with one
ioctl, so this module needs neither pyroute2 nor a helper binary.
"""
from __future__ import annotations

import contextlib
import os

from nsbox.runtime import linux
from nsbox.runtime.errors import Conflict, NsboxError
from nsbox.runtime.paths import Paths

from nsbox.network.fileio import locked

def netns_path(paths: Paths, cid: str) -> str:
    return os.path.join(paths.netns_dir, cid)


def _is_mountpoint(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def ensure_netns_dir(paths: Paths) -> None:
    """netns_dir as a private self-bind mount: on a host with shared `/` (systemd), the nsfs mounts
    would otherwise propagate into every peer mount namespace and outlive remove_netns there."""
    d = paths.netns_dir
    os.makedirs(d, mode=0o755, exist_ok=True)
    if _is_mountpoint(d):
        return
    with locked(os.path.join(paths.runroot, "netns.lock")):  # two racing runs must not stack two mounts
        if not _is_mountpoint(d):
            sc = linux.Syscalls()
            sc.mount(d, d, None, linux.MS_BIND)
            sc.mount(None, d, None, linux.MS_PRIVATE)


def release_netns_dir(paths: Paths) -> None:
    """Undo ensure_netns_dir (for test roots and `system reset`): only when no netns file is left."""
    d = paths.netns_dir
    if os.path.isdir(d) and not os.listdir(d) and _is_mountpoint(d):
        linux.Syscalls().umount2(d, linux.MNT_DETACH)


def create_netns(paths: Paths, cid: str) -> str:
    ensure_netns_dir(paths)
    path = netns_path(paths, cid)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        raise Conflict(f"network namespace for {cid[:12]} already exists") from None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: single-threaded, so unshare moves exactly this process
        code = 1
        try:
            os.close(r)
            sc = linux.Syscalls()
            sc.unshare(linux.CLONE_NEWNET)
            sc.mount("/proc/self/ns/net", path, None, linux.MS_BIND)
            linux.RealSyscalls().lo_up()
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            with contextlib.suppress(Exception):
                os.write(w, str(e).encode()[:4000])
        finally:
            os._exit(code)
    os.close(w)
    try:
        msg = b""
        while chunk := os.read(r, 4096):
            msg += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        remove_netns(paths, cid)
        raise NsboxError(f"creating network namespace: {msg.decode(errors='replace') or 'child failed'}")
    return path


def remove_netns(paths: Paths, cid: str) -> None:
    """Idempotent. Dropping the last reference destroys the namespace and with it the veth pair."""
    path = netns_path(paths, cid)
    with contextlib.suppress(OSError):
        linux.Syscalls().umount2(path, linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def list_netns(paths: Paths) -> list[str]:
    try:
        return sorted(os.listdir(paths.netns_dir))
    except FileNotFoundError:
        return []
