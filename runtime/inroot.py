"""The one way nsbox touches a container's files from the host: fds the kernel resolved inside its root.

A path that names something in a container (cp in both directions, export, commit, volume
copy-up) is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd on the
container's root, so `..` stops at that root and an absolute symlink means the container's `/`,
never the host's. Everything below it is reached one name at a time with O_NOFOLLOW relative
to a directory fd, so no lookup can leave the tree, whatever the container swaps in meanwhile:
the property holds by construction, not by checking paths before using them.

Errors name container paths only (the caller's `label`), never the host path of the store or
of /proc/PID/root.
"""
from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Callable

from nsbox.runtime import linux as L

_IN_ROOT = L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_HOPS = 40   # the kernel's own limit on symlinks in one lookup


@dataclass
class Entry:
    """One name in a directory: `dirfd` (owned: close() it) + `name`, and its lstat (None: absent)."""
    dirfd: int
    name: str
    st: os.stat_result | None
    path: str    # as the user would write it (a container path inside a root)

    def close(self) -> None:
        os.close(self.dirfd)

    def __enter__(self) -> Entry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Root:
    """A directory taken as `/` (a container's root), or, with Root.host(), the host as it is."""

    def __init__(self, fd: int, in_root: bool):
        self.fd = fd
        self.in_root = in_root

    @classmethod
    def at(cls, path: str) -> Root:
        """path is a trusted host path (the store's rootfs, /proc/PID/root), opened as is."""
        return cls(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), True)

    @classmethod
    def from_fd(cls, fd: int) -> Root:
        return cls(os.dup(fd), True)

    @classmethod
    def host(cls) -> Root:
        return cls(os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), False)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def norm(self, path: str) -> str:
        # inside a root, docker cleans the path lexically first (`..` clamped at `/`)
        return posixpath.normpath("/" + path).replace("//", "/") if self.in_root else path

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        """openat2 inside the root (host: ordinary resolution, relative to the cwd)."""
        if self.in_root:
            return L.openat2(self.fd, self.norm(path).lstrip("/") or ".", flags, mode, _IN_ROOT)
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def locate(self, path: str, follow: bool = False) -> Entry:
        """The entry `path` names: its parent resolved in the root, the last name not followed
        unless `follow` (then symlinks are chased here, each target resolved in the root)."""
        p = self.norm(path)
        for _ in range(_MAX_HOPS):
            parent, name = posixpath.split(p.rstrip("/")) if p.rstrip("/") else ("/", ".")
            if not name or name == "..":   # host paths only: "." , "x/.." name a directory itself
                parent, name = p, "."
            pfd = self.open(parent or ".", os.O_PATH | os.O_DIRECTORY)
            try:
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                target = os.readlink(name, dir_fd=pfd) if follow and st is not None and stat.S_ISLNK(st.st_mode) \
                    else None
            except BaseException:
                os.close(pfd)
                raise
            if target is not None:
                os.close(pfd)
                p = self.norm(target if target.startswith("/") else posixpath.join(parent, target))
                continue
            return Entry(pfd, name, st, path)
        import errno
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


# ---------------------------------------------------------------- copying trees fd to fd
@dataclass
class CopyOptions:
    keep_owner: bool = False          # cp -a, COPY --from; otherwise new files belong to `owner` or the copier
    owner: tuple[int, int] | None = None   # COPY --chown (and COPY's default 0:0)
    # with keep_owner: (uid, gid) read -> (uid, gid) to give, where source and destination see ids
    # differently (a user namespace's container ids, its idmapped view, its host ids)
    map_ids: Callable[[int, int], tuple[int, int]] | None = None
    chmod: int | None = None          # COPY --chmod
    replace_dirs: bool = False        # a non-directory replaces a directory (docker build), or refuse (docker cp)
    skipped: list[str] = field(default_factory=list)   # devices and sockets: never copied


class CopyError(Exception):
    """A copy that cannot be done as asked; the message names the destination as the user wrote it."""


def copy_entry(src: Entry, dst_dirfd: int, dst_name: str, opts: CopyOptions, label: str) -> None:
    """Copy src (its lstat'ed entry) to dst_dirfd/dst_name, recursively, never following a link.

    An existing non-directory at the destination is replaced (docker untars over it); an
    existing directory takes a directory's contents and refuses anything else.
    """
    _copy(src.dirfd, src.name, src.st, dst_dirfd, dst_name, opts, label)


def copy_children(src: Entry, dst_dirfd: int, opts: CopyOptions, label: str) -> None:
    """Copy what the directory src holds into dst_dirfd (docker's `SRC/.`)."""
    sfd = os.open(src.name, _DIR, dir_fd=src.dirfd)
    try:
        _children(sfd, dst_dirfd, opts, label)
    finally:
        os.close(sfd)


def _children(sfd: int, dfd: int, opts: CopyOptions, label: str) -> None:
    for name in sorted(os.listdir(sfd)):
        try:
            st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            continue   # gone while we copied (a running container)
        _copy(sfd, name, st, dfd, name, opts, f"{label.rstrip('/')}/{name}")


def _copy(sdir: int, sname: str, st: os.stat_result, ddir: int, dname: str, opts: CopyOptions,
          label: str) -> None:
    dfd = place(sdir, sname, st, ddir, dname, opts, label)
    if dfd is None:
        return
    try:
        sfd = os.open(sname, _DIR, dir_fd=sdir)
        try:
            _children(sfd, dfd, opts, label)
            _meta_fd(dfd, os.fstat(sfd), opts)   # after the children, which bumped its times
        finally:
            os.close(sfd)
    finally:
        os.close(dfd)


def place(sdir: int, sname: str, st: os.stat_result, ddir: int, dname: str, opts: CopyOptions,
          label: str) -> int | None:
    """Copy ONE entry sdir/sname (lstat st) to ddir/dname, never following a link on either side.
    A directory is made (or kept) and its open fd returned, for the caller to fill and close."""
    try:
        dst = os.stat(dname, dir_fd=ddir, follow_symlinks=False)
    except FileNotFoundError:
        dst = None
    if stat.S_ISDIR(st.st_mode):
        if dst is not None and not stat.S_ISDIR(dst.st_mode):
            os.unlink(dname, dir_fd=ddir)
            dst = None
        if dst is None:
            os.mkdir(dname, 0o700, dir_fd=ddir)
        dfd = os.open(dname, _DIR, dir_fd=ddir)
        try:
            _meta_fd(dfd, st, opts)
        except BaseException:
            os.close(dfd)
            raise
        return dfd
    if dst is not None and stat.S_ISDIR(dst.st_mode):
        if not opts.replace_dirs:
            raise CopyError(f"cannot overwrite directory {label} with non-directory")
        import shutil
        shutil.rmtree(dname, dir_fd=ddir)
        dst = None
    if stat.S_ISREG(st.st_mode):
        # O_NONBLOCK: if a fifo was swapped in, do not hang on it; fstat then tells
        sfd = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                      dir_fd=sdir)
        try:
            fst = os.fstat(sfd)
            if not stat.S_ISREG(fst.st_mode):
                opts.skipped.append(label)
                return None
            if dst is not None:
                os.unlink(dname, dir_fd=ddir)
            dfd = os.open(dname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=ddir)
            try:
                _copy_data(sfd, dfd)
                _meta_fd(dfd, fst, opts)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
    elif stat.S_ISLNK(st.st_mode):
        target = os.readlink(sname, dir_fd=sdir)
        if dst is not None:
            os.unlink(dname, dir_fd=ddir)
        os.symlink(target, dname, dir_fd=ddir)
        owner = _owner(st, opts)
        if owner is not None:
            os.chown(dname, *owner, dir_fd=ddir, follow_symlinks=False)
        os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        if dst is not None:
            os.unlink(dname, dir_fd=ddir)
        os.mkfifo(dname, stat.S_IMODE(st.st_mode) & 0o777, dir_fd=ddir)
        owner = _owner(st, opts)
        if owner is not None:
            os.chown(dname, *owner, dir_fd=ddir, follow_symlinks=False)
    else:
        # device nodes would hand whoever reads them on the other side a device (a container
        # may mknod what the host kernel then opens for the copier); sockets cannot be copied
        opts.skipped.append(label)
    return None


def _copy_data(sfd: int, dfd: int) -> None:
    while True:
        try:
            n = os.sendfile(dfd, sfd, None, 1 << 30)
        except OSError:
            break   # fall back to read/write below (sendfile refuses some filesystems)
        if n == 0:
            return
    while chunk := os.read(sfd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view):]


def _owner(st: os.stat_result, opts: CopyOptions) -> tuple[int, int] | None:
    if opts.owner is not None:
        return opts.owner
    if not opts.keep_owner:
        return None
    return opts.map_ids(st.st_uid, st.st_gid) if opts.map_ids else (st.st_uid, st.st_gid)


def _meta_fd(fd: int, st: os.stat_result, opts: CopyOptions) -> None:
    owner = _owner(st, opts)
    if owner is not None:
        os.fchown(fd, *owner)
    # after chown: chown clears setuid bits
    os.fchmod(fd, stat.S_IMODE(st.st_mode) if opts.chmod is None else opts.chmod)
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---------------------------------------------------------------- walking a tree (export, commit)
@dataclass
class Node:
    parent: int                 # fd of the directory holding it (borrowed)
    name: str
    rel: str                    # path below the walk's start ("a/b")
    st: os.stat_result          # lstat
    fd: int | None = None       # directories: an open fd, valid while the node and its subtree are visited


def walk(dirfd: int, rel: str = ""):
    """Pre-order, sorted: every entry below dirfd (a readable directory fd), links not followed."""
    for name in sorted(os.listdir(dirfd)):
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        child = f"{rel}/{name}" if rel else name
        if not stat.S_ISDIR(st.st_mode):
            yield Node(dirfd, name, child, st)
            continue
        fd = os.open(name, _DIR, dir_fd=dirfd)
        try:
            yield Node(dirfd, name, child, st, fd)
            yield from walk(fd, child)
        finally:
            os.close(fd)


def open_file(node: Node) -> int | None:
    """A read fd for a regular file node, or None if something else was swapped in."""
    fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                 dir_fd=node.parent)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def tarinfo(node: Node, arcname: str):
    """A TarInfo for the node (regular files: size from lstat; the caller opens them with open_file)."""
    import tarfile
    st = node.st
    ti = tarfile.TarInfo(arcname)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = st.st_mtime
    ti.uname = ti.gname = ""
    m = st.st_mode
    if stat.S_ISREG(m):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(m):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(m):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(node.name, dir_fd=node.parent)
    elif stat.S_ISFIFO(m):
        ti.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None   # sockets: tar has no type for them
    return ti


def add_node(tar, node: Node, ti, links: dict, file_caps: bool = False) -> None:
    """Append node to tar as ti; a regular file with more links is stored once, then as hard links.
    file_caps: keep a file's security.capability xattr (an image layer's setcap binaries)."""
    import tarfile
    if ti.type != tarfile.REGTYPE:
        tar.addfile(ti)
        return
    key = (node.st.st_dev, node.st.st_ino)
    if node.st.st_nlink > 1:
        if key in links:
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, links[key], 0
            tar.addfile(ti)
            return
        links[key] = ti.name
    fd = open_file(node)
    if fd is None:
        return
    if file_caps:
        try:
            cap = os.getxattr(fd, "security.capability")
            ti.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")
        except OSError:
            pass
    with os.fdopen(fd, "rb") as f:
        ti.size = os.fstat(fd).st_size
        tar.addfile(ti, _Exactly(f, ti.size))


class _Exactly:
    """A file that yields exactly n bytes: a running container may grow or shrink it as we read."""

    def __init__(self, f, n: int):
        self._f, self._left = f, n

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._f.read(want) if want else b""
        if len(data) < want:
            data += b"\0" * (want - len(data))
        self._left -= len(data)
        return data
