"""Extract untrusted layer tars without ever touching anything outside the destination.

Every path is walked one component at a time with openat(O_NOFOLLOW) from a directory fd of
the destination, so `..`, absolute names, symlinked parents and links that point elsewhere
cannot escape. Policy for odd members:
  * absolute names, `..` components, hard links to outside/absent targets, symlinked parents,
    oversized members: refused (UnsafeArchive, an InvalidArgument: exit 125, one line).
  * block/char devices other than 0:0: skipped and counted. The runtime gives every container
    its own /dev; a device node shipped in an image would hand the container a host device
    (docker keeps them only because it trusts root-built images; we don't trust input tars).
  * char 0:0 and OCI `.wh.` files: whiteouts, translated per `mode`.
  * xattrs: only `security.capability` and `user.*` are applied (`trusted.overlay.*` from a
    tar could forge overlay redirects/opaque dirs).
  * symlinks are created verbatim (absolute targets are normal in a rootfs) and never followed.
Modes: "layer" turns OCI whiteouts into overlay whiteouts (a layer dir for overlay lowerdirs);
"apply" deletes the whited-out lower paths (building a flat rootfs for the copy driver).
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field

from nsbox.image import whiteout as wh
from nsbox.runtime.errors import InvalidArgument

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ALLOWED_XATTR = ("security.capability", "user.")


class UnsafeArchive(InvalidArgument):
    pass


@dataclass(frozen=True)
class Limits:
    max_member: int = 64 << 30      # one file larger than 64 GiB is not a container image
    max_total: int = 512 << 30
    max_members: int = 10_000_000


@dataclass
class ExtractResult:
    members: int = 0
    bytes: int = 0
    skipped_devices: list[str] = field(default_factory=list)


def split_name(name: str, what: str = "member") -> list[str]:
    """Tar member name -> safe path components (refuses absolute and `..`)."""
    if "\x00" in name:
        raise UnsafeArchive(f"refusing {what} {name!r}: NUL byte in name")
    if name.startswith("/"):
        raise UnsafeArchive(f"refusing {what} {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"refusing {what} {name!r}: '..' component")
    return parts


class _Dest:
    """Directory fds under the destination root, opened without following symlinks."""

    def __init__(self, root: str | int):
        # an int is a directory fd the caller resolved (inside a container's root): ours is a dup
        self.root_fd = os.dup(root) if isinstance(root, int) else os.open(root, _DIR_FLAGS)
        self._cache: dict[tuple[str, ...], int] = {}

    def close(self) -> None:
        self.flush()
        os.close(self.root_fd)

    def flush(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def dir(self, parts: list[str] | tuple[str, ...], member: str, create: bool = True) -> int:
        """fd of the directory `parts` (borrowed: owned by the cache)."""
        key = tuple(parts)
        if not key:
            return self.root_fd
        fd = self._cache.get(key)
        if fd is not None:
            return fd
        parent = self.dir(key[:-1], member, create)
        comp = key[-1]
        try:
            fd = os.open(comp, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise UnsafeArchive(f"refusing member {member!r}: {'/'.join(key)} does not exist") from None
            os.mkdir(comp, 0o755, dir_fd=parent)
            fd = os.open(comp, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeArchive(f"refusing member {member!r}: parent {'/'.join(key)} is a symlink or not a directory") from None
            raise
        if len(self._cache) > 512:
            self.flush()
            return self.dir(key, member, create)
        self._cache[key] = fd
        return fd

    def remove(self, parent: tuple[str, ...], name: str, member: str) -> bool:
        """Remove parent/name (any type, dirs recursively, never following symlinks); True if it existed."""
        parent_fd = self.dir(parent, member)
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            gone = parent + (name,)  # drop cached fds inside the tree we delete
            for k in [k for k in self._cache if k[:len(gone)] == gone]:
                os.close(self._cache.pop(k))
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return True


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for k, v in member.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            name = k[len("SCHILY.xattr."):]
            if name.startswith(_ALLOWED_XATTR):
                out.append((name, v.encode("utf-8", "surrogateescape")))
    return out


def _apply_meta_fd(fd: int, m: tarfile.TarInfo) -> None:
    os.fchown(fd, m.uid, m.gid)
    os.fchmod(fd, m.mode & 0o7777)  # after chown: chown clears setuid bits
    for name, value in _xattrs(m):
        try:
            os.setxattr(fd, name, value)
        except OSError:
            pass  # fs without user xattrs: not worth failing an image for


def _ns(m: tarfile.TarInfo) -> tuple[int, int]:
    t = int(m.mtime * 1e9) if isinstance(m.mtime, float) else int(m.mtime) * 1_000_000_000
    return (t, t)


def extract(fileobj, dest: str | int, mode: str = "layer", limits: Limits = Limits()) -> ExtractResult:
    """Extract the (uncompressed or compressed) tar stream `fileobj` into the existing dir `dest` (a path or fd)."""
    if mode not in ("layer", "apply"):
        raise ValueError(mode)
    res = ExtractResult()
    d = _Dest(dest)
    written: set[tuple[str, ...]] = set()   # paths this tar created (whiteouts only hide LOWER layers)
    dir_times: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
    try:
        try:
            tar = tarfile.open(fileobj=fileobj, mode="r|*")
        except tarfile.TarError as e:
            raise InvalidArgument(f"not a tar archive: {e}") from None
        with tar:
            try:
                for m in tar:
                    _one(tar, m, d, mode, limits, res, written, dir_times)
            except tarfile.TarError as e:
                raise InvalidArgument(f"corrupt tar archive: {e}") from None
            except EOFError as e:
                raise InvalidArgument(f"truncated tar archive: {e}") from None
        # directory mtimes last: creating children would bump them again
        for parts, m in sorted(dir_times, key=lambda x: -len(x[0])):
            try:
                fd = d.dir(parts, m.name, create=False)
                os.utime(fd, ns=_ns(m))
            except (OSError, UnsafeArchive):
                pass
    finally:
        d.close()
    return res


def _one(tar, m: tarfile.TarInfo, d: _Dest, mode: str, limits: Limits, res: ExtractResult,
         written: set, dir_times: list) -> None:
    res.members += 1
    if res.members > limits.max_members:
        raise UnsafeArchive(f"refusing archive: more than {limits.max_members} members")
    parts = split_name(m.name)
    if m.size < 0 or m.size > limits.max_member:
        raise UnsafeArchive(f"refusing member {m.name!r}: size {m.size} exceeds the {limits.max_member}-byte limit")
    if not parts:  # the root itself ("./"): only its metadata
        if m.isdir():
            _apply_meta_fd(d.root_fd, m)
            dir_times.append(((), m))
        return
    key = tuple(parts)
    base = parts[-1]
    pfd = d.dir(parts[:-1], m.name)

    if base.startswith(wh.WH_PREFIX):
        target = wh.whiteout_target(base)
        if base == wh.WH_OPAQUE:
            if mode == "layer":
                wh.set_opaque(pfd)
            else:
                prefix = key[:-1]
                for child in os.listdir(pfd):
                    if prefix + (child,) not in written:
                        d.remove(prefix, child, m.name)
        elif target:
            tkey = key[:-1] + (target,)
            if mode == "layer":
                d.remove(key[:-1], target, m.name)
                wh.make_overlay_whiteout(target, pfd)
                written.add(tkey)
            elif tkey not in written:
                d.remove(key[:-1], target, m.name)
        return  # other .wh..wh.* names are AUFS bookkeeping

    if (m.ischr() or m.isblk()) and not (m.ischr() and m.devmajor == 0 and m.devminor == 0):
        res.skipped_devices.append(m.name)
        return

    existing_dir = False
    try:
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        existing_dir = stat.S_ISDIR(st.st_mode)
    except FileNotFoundError:
        st = None
    if st is not None and not (m.isdir() and existing_dir):
        d.remove(key[:-1], base, m.name)
    written.add(key)

    if m.isdir():
        if not existing_dir:
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = d.dir(parts, m.name)
        _apply_meta_fd(fd, m)
        dir_times.append((key, m))
    elif m.isreg():
        res.bytes += m.size
        if res.bytes > limits.max_total:
            raise UnsafeArchive(f"refusing archive: more than {limits.max_total} bytes of content")
        if m.size > (1 << 30):
            sv = os.fstatvfs(pfd)
            if m.size > sv.f_bavail * sv.f_frsize:
                raise UnsafeArchive(f"refusing member {m.name!r}: {m.size} bytes do not fit in the free space")
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            src = tar.extractfile(m)
            left = m.size
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise InvalidArgument(f"truncated tar archive at {m.name!r}")
                left -= len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            _apply_meta_fd(fd, m)
            os.utime(fd, ns=_ns(m))
        finally:
            os.close(fd)
    elif m.issym():
        os.symlink(m.linkname, base, dir_fd=pfd)
        os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.utime(base, ns=_ns(m), dir_fd=pfd, follow_symlinks=False)
    elif m.islnk():
        tparts = split_name(m.linkname, "hard link target")
        if not tparts:
            raise UnsafeArchive(f"refusing member {m.name!r}: hard link to the root")
        tpfd = d.dir(tparts[:-1], m.name, create=False)
        try:
            os.link(tparts[-1], base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeArchive(f"refusing member {m.name!r}: hard link target {m.linkname!r} is not in this layer") from None
        except PermissionError:
            raise UnsafeArchive(f"refusing member {m.name!r}: cannot hard link to {m.linkname!r}") from None
    elif m.ischr():  # 0:0, a whiteout already in overlay spelling
        if mode == "layer":
            wh.make_overlay_whiteout(base, pfd)
        # apply mode: removing was enough
    elif m.isfifo():
        os.mkfifo(base, m.mode & 0o777, dir_fd=pfd)
        os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
    else:
        raise UnsafeArchive(f"refusing member {m.name!r}: unsupported tar type {m.type!r}")
