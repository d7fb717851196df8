"""The kernel side of user namespaces: making one, and idmapped mounts shifted by it.

Ordering (why the container joins its user namespace last). runc's nsexec joins the namespaces
given as paths, then unshares the user namespace and has its parent write the maps, then unshares
the rest, so they belong to the new namespace. nsbox makes the user namespace first too (the
monitor, with a throwaway helper, writes uid_map/gid_map before PID 1 exists), but PID 1 builds
everything else as the host's root and setns()es into the user namespace only after pivot_root,
just before it drops to the container's user:
* the pid namespace is made by the monitor and the bridge netns by the CLI, both owned by the
  host's user namespace; procfs for that pid namespace, the overlay mount and idmapped mounts
  (mount_setattr(MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN over the layers' filesystem) all need
  the host's root, which a process inside the new namespace is not;
* so container root holds capabilities only in its own user namespace, over nothing the host
  owns: it cannot mount, set host-owned sysctls or reach any namespace's owner. Binding ports
  below 1024 and ICMP sockets work through the netns sysctls ip_unprivileged_port_start and
  ping_group_range (docker sets both by default); raw sockets (CAP_NET_RAW over the netns) do not.

Idmapped layers: lower layers and the container's upper/work dirs are detached clones
(open_tree) shifted by the container's namespace and handed to overlayfs as fds (6.13+). The
overlay is mounted with the fs ids of the container's root, because overlayfs creates its work
dir and copy-ups with the mounter's credentials, and the host's uid 0 has no id on a mount
shifted by the container's namespace (EOVERFLOW, then overlayfs falls back to read-only). So the
upper dir holds container-relative ids on disk, and `commit` stores layers exactly as without a
user namespace.
"""
from __future__ import annotations

import os

from nsbox.runtime import linux as L


def create_userns(sc, uidmap: list[dict], gidmap: list[dict]) -> int:
    """A new user namespace with these OCI maps; returns an O_CLOEXEC fd to it.

    A helper child unshares it; we, as its parent with CAP_SETUID/CAP_SETGID on the host, write
    its maps (setgroups stays "allow": only an unprivileged writer has to deny it) and keep an fd.
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(L.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("could not create the user namespace")
        for name, maps in (("uid_map", uidmap), ("gid_map", gidmap)):
            text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
            sc.write_file(f"/proc/{pid}/{name}", text)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def join_userns(sc, userns_fd: int) -> None:
    """Enter the container's user namespace as its root: full capabilities there, none outside.

    setns() resets the bounding set, securebits and keepcaps, so capabilities are dropped after this.
    """
    sc.setns(userns_fd, L.CLONE_NEWUSER)
    sc.close(userns_fd)
    sc.setgid(0)
    sc.setuid(0)


class FsIdentity:
    """New files are created as (uid, gid), capabilities kept: `with FsIdentity(sc, uid, gid):`."""

    def __init__(self, sc, uid: int, gid: int):
        self.sc, self.uid, self.gid = sc, uid, gid

    def __enter__(self):
        self.sc.prctl(L.PR_SET_SECUREBITS, L.SECBIT_NO_SETUID_FIXUP)
        self.sc.setfsids(self.uid, self.gid)
        return self

    def __exit__(self, *exc) -> None:
        self.sc.setfsids(0, 0)
        self.sc.prctl(L.PR_SET_SECUREBITS, 0)


def clone_idmapped(sc, path: str, userns_fd: int) -> int:
    fd = sc.open_tree_clone(path)
    try:
        sc.mount_setattr_idmap(fd, userns_fd)
    except BaseException:
        sc.close(fd)
        raise
    return fd


def overlay_idmapped(sc, plan: dict, target: str, userns_fd: int, root: tuple[int, int]) -> None:
    """The overlay rootfs with every layer shifted by the container's user namespace."""
    fds: list[int] = []
    try:
        lowers = [clone_idmapped(sc, d, userns_fd) for d in plan["lowerdirs"]]
        fds += lowers
        rw = clone_idmapped(sc, os.path.dirname(plan["upper"]), userns_fd)
        fds.append(rw)
        upper = sc.open_path(os.path.basename(plan["upper"]), rw)
        fds.append(upper)
        work = sc.open_path(os.path.basename(plan["work"]), rw)
        fds.append(work)
        with FsIdentity(sc, *root):  # overlayfs works in the upper dir with the mounter's creds
            fs = sc.fsopen("overlay")
            fds.append(fs)
            for fd in lowers:
                sc.fsconfig_fd(fs, "lowerdir+", fd)
            sc.fsconfig_fd(fs, "upperdir", upper)
            sc.fsconfig_fd(fs, "workdir", work)
            sc.fsconfig_create(fs)
            mnt = sc.fsmount(fs)
            fds.append(mnt)
        sc.move_mount(mnt, target)
    finally:
        for fd in fds:
            sc.close(fd)


def bind_idmapped(sc, source: str, target: str, userns_fd: int) -> None:
    """A bind mount of `source` at `target` shifted by the container's user namespace."""
    fd = clone_idmapped(sc, source, userns_fd)
    try:
        sc.move_mount(fd, target)
    finally:
        sc.close(fd)


def supported(tmp_dir: str) -> bool:
    """Can this host idmap a mount of `tmp_dir`'s filesystem? (Probed in a throwaway child.)"""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sc = L.RealSyscalls()
            fd = create_userns(sc, [{"containerID": 0, "hostID": 1, "size": 1}],
                               [{"containerID": 0, "hostID": 1, "size": 1}])
            sc.close(clone_idmapped(sc, tmp_dir, fd))
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
