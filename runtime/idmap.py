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

Idmapped layers: lower layers and the container's upper/work dirs are clones (open_tree)
shifted by the container's namespace, attached where overlayfs can name them. The overlay is
mounted with the fs ids of the container's root, because overlayfs creates its work dir and
copy-ups with the mounter's credentials, and the host's uid 0 has no id on a mount shifted by
the container's namespace (EOVERFLOW, then overlayfs falls back to read-only). So the upper dir
holds container-relative ids on disk, and `commit` stores layers exactly as without a user
namespace. Where mounts cannot be idmapped, the container gets a private copy of the image
chowned to its host ids instead (chown_tree).
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


def userns_root(linux: dict) -> tuple[int, int]:
    """The host uid and gid of the container's root (ids 0 of its maps)."""
    def first(maps):
        return next((int(m["hostID"]) for m in maps or [] if int(m["containerID"]) == 0), 0)
    return first(linux.get("uidMappings")), first(linux.get("gidMappings"))


def make_target(sc, dest: str, is_dir: bool, userns_fd: int, root: tuple[int, int]) -> None:
    """A missing mount point, made as the container's root when the rootfs is idmapped (the
    host's root has no id there: EOVERFLOW)."""
    if os.path.lexists(dest):
        return
    if userns_fd >= 0:
        with FsIdentity(sc, *root):
            sc.makedirs(dest) if is_dir else sc.touch(dest)
    else:
        sc.makedirs(dest) if is_dir else sc.touch(dest)


def clone_idmapped(sc, path: str, userns_fd: int) -> int:
    fd = sc.open_tree_clone(path)
    try:
        sc.mount_setattr_idmap(fd, userns_fd)
    except BaseException:
        sc.close(fd)
        raise
    return fd


def overlay_idmapped(sc, plan: dict, target: str, userns_fd: int, root: tuple[int, int]) -> None:
    """The overlay rootfs with every layer shifted by the container's user namespace.

    The shifted clones are attached under a private tmpfs next to `target` (in our own mount
    namespace only; pivot_root's detach of the old root takes them away) and overlayfs gets
    their paths: passing layers as fds needs 6.13, the VM lane's 6.12 does not have it.
    """
    stage = os.path.join(os.path.dirname(target), "idmap")
    sc.makedirs(stage)
    sc.mount("tmpfs", stage, "tmpfs", L.MS_NOSUID | L.MS_NODEV, "mode=700")
    lowers = []
    for i, d in enumerate(plan["lowerdirs"]):
        lowers.append(os.path.join(stage, str(i)))
        sc.makedirs(lowers[-1])
        bind_idmapped(sc, d, lowers[-1], userns_fd)
    rw = os.path.join(stage, "rw")
    sc.makedirs(rw)
    bind_idmapped(sc, os.path.dirname(plan["upper"]), rw, userns_fd)
    with FsIdentity(sc, *root):  # overlayfs works in the upper dir with the mounter's creds
        L.overlay_mount(sc, lowers, os.path.join(rw, os.path.basename(plan["upper"])),
                        os.path.join(rw, os.path.basename(plan["work"])), target)


def bind_idmapped(sc, source: str, target: str, userns_fd: int) -> None:
    """A bind mount of `source` at `target` shifted by the container's user namespace."""
    fd = clone_idmapped(sc, source, userns_fd)
    try:
        sc.move_mount(fd, target)
    finally:
        sc.close(fd)


def claim_volume(path: str, root: tuple[int, int]) -> None:
    """Without idmapped mounts, a fresh volume is handed to the container's root by chown."""
    st = os.stat(path)
    if st.st_uid == 0 and st.st_gid == 0 and not os.listdir(path):
        os.chown(path, *root)


def chown_tree(top: str, shift) -> None:
    """The fallback for filesystems without idmapped mounts: give a private copy the container's
    host ids (shift maps a container (uid, gid) to the host's; setuid/setgid bits survive)."""
    import stat

    def one(p: str) -> None:
        st = os.lstat(p)
        os.lchown(p, *shift(st.st_uid, st.st_gid))
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(p, stat.S_IMODE(st.st_mode))  # chown cleared them
    one(top)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            one(os.path.join(dirpath, name))


def mode_for(cache_dir: str, probe_dir: str) -> str:
    """"idmap" where this host can idmap mounts of the store's filesystem, else "chown"
    (NSBOX_USERNS_IDMAP=0 forces the fallback); the probe's answer is kept in cache_dir."""
    if os.environ.get("NSBOX_USERNS_IDMAP") == "0":
        return "chown"
    path = os.path.join(cache_dir, "idmap-mode")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(probe_dir, exist_ok=True)
    mode = "idmap" if supported(probe_dir) else "chown"
    from nsbox.runtime.fsutil import write_atomic
    write_atomic(path, mode)
    return mode


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
