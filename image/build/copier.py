"""COPY/ADD/WORKDIR file operations inside a mounted rootfs (run by overlayfs.run_in_overlay's child).

docker's rules: a directory source copies its CONTENTS; the destination is a directory when it
ends with `/` (or is `.`), when there are several sources, or when it already is one; relative
destinations are resolved against WORKDIR by the caller; new files are owned by 0:0 unless
--chown (COPY --from keeps the source's owners); ADD unpacks local tar/tar.gz/tar.xz/tar.bz2.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass

from nsbox.image.build.context import Context, Source, secure_join
from nsbox.runtime.errors import InvalidArgument


@dataclass
class CopySpec:
    sources: list[str]            # as written (after substitution), maybe globs
    dest: str                     # absolute path inside the image
    dest_is_dir: bool             # ends with "/" or "." or several sources
    chown: str = ""               # "user[:group]" as written
    chmod: int | None = None
    add: bool = False             # ADD: unpack local archives
    keep_owner: bool = False      # COPY --from: keep source uid/gid


def _lookup(rootfs: str, fname: str, name: str, what: str) -> int:
    path = secure_join(rootfs, f"/etc/{fname}")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3 and parts[0] == name and parts[2].isdigit():
                    return int(parts[2])
    except OSError:
        pass
    raise InvalidArgument(f"unable to convert {what} {name!r} to {what}id: no matching entries in {fname} file")


def resolve_chown(rootfs: str, chown: str) -> tuple[int, int] | None:
    if not chown:
        return None
    user, _, group = chown.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {chown!r}")
    uid = int(user) if user.isdigit() else _lookup(rootfs, "passwd", user, "user")
    if not group:
        return uid, uid      # docker: a lone user (name or id) uses the same numeric id as the group
    gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group, "group")
    return uid, gid


def is_archive(path: str) -> bool:
    import tarfile
    try:
        with tarfile.open(path, "r:*") as t:
            return t.next() is not None
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False
    except Exception:
        return False


def _mkdirs(rootfs: str, path: str, owner: tuple[int, int] | None) -> str:
    """mkdir -p inside rootfs (symlinks resolved inside it); new dirs get `owner` (default root)."""
    parts = [p for p in path.split("/") if p]
    cur = "/"
    for p in parts:
        cur = os.path.join(cur, p)
        host = secure_join(rootfs, cur)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            os.lchown(host, *(owner or (0, 0)))
        elif not os.path.isdir(host):
            raise InvalidArgument(f"cannot create directory {cur}: a file with that name exists in the image")
    return secure_join(rootfs, path)


def _place(host_src: str, st: os.stat_result, target: str, owner: tuple[int, int] | None, chmod: int | None) -> None:
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(target) and not os.path.isdir(target) or os.path.islink(target):
            os.unlink(target)
        if not os.path.isdir(target):
            os.mkdir(target, 0o700)
        os.lchown(target, uid, gid)
        os.chmod(target, mode)
        return
    if os.path.lexists(target):
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(host_src), target)
        os.lchown(target, uid, gid)
        return
    if stat.S_ISREG(st.st_mode):
        fd = os.open(host_src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with os.fdopen(fd, "rb", closefd=False) as fin, open(target, "xb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        finally:
            os.close(fd)
        os.lchown(target, uid, gid)
        os.chmod(target, mode)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    # fifos, sockets, devices: not copied (docker copies fifos; nothing real needs them in an image)


def copy_tree(ctx: Context, src: Source, rootfs: str, image_target: str, owner, chmod) -> None:
    """Copy a file, or a directory's contents, to `image_target` (a path inside rootfs).

    Every target is re-resolved inside rootfs: a symlink the image has under the destination
    (say /app/sub -> /etc) must never make the host kernel write outside the rootfs.
    """
    import posixpath
    dirs: list[tuple[str, os.stat_result]] = []
    target = secure_join(rootfs, image_target, follow_last=False)
    for rel, path, st in ctx.walk(src):
        t = secure_join(rootfs, posixpath.join(image_target, rel), follow_last=False) if rel else target
        if not rel and stat.S_ISDIR(st.st_mode):
            if not os.path.isdir(target):
                os.makedirs(target, 0o755, exist_ok=True)
                os.lchown(target, *(owner or (st.st_uid, st.st_gid)))
            dirs.append((t, st))   # docker: the dest dir takes the source dir's mtime
            continue
        _place(path, st, t, owner, chmod)
        if stat.S_ISDIR(st.st_mode):
            dirs.append((t, st))
    for t, st in reversed(dirs):
        try:
            os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        except OSError:
            pass


def do_copy(rootfs: str, ctx: Context, spec: CopySpec, what: str = "COPY") -> None:
    owner = resolve_chown(rootfs, spec.chown)
    if owner is None and not spec.keep_owner:
        owner = (0, 0)
    srcs: list[Source] = []
    for s in spec.sources:
        found = ctx.expand(s)
        if not found:
            raise InvalidArgument(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                                  f"stat {s}: file does not exist")
        srcs.extend(found)
    many = len(srcs) > 1 or spec.dest_is_dir
    dest_host = secure_join(rootfs, spec.dest)
    if len(srcs) > 1 and not spec.dest_is_dir:
        raise InvalidArgument(f"When using {what} with more than one source file, the destination must be a "
                              f"directory and end with a /")
    dest_is_dir = many or os.path.isdir(dest_host)
    for src in srcs:
        st = os.stat(src.path)
        if stat.S_ISDIR(st.st_mode):
            _mkdirs(rootfs, spec.dest, owner)
            copy_tree(ctx, src, rootfs, spec.dest, owner, spec.chmod)
        elif spec.add and is_archive(src.path):
            target = _mkdirs(rootfs, spec.dest, owner)
            from nsbox.image import tarsafe
            from nsbox.image.layers import decompressed
            with open(src.path, "rb") as f:
                tarsafe.extract(decompressed(f), target, mode="apply")
        else:
            if dest_is_dir:
                _mkdirs(rootfs, spec.dest, owner)
                name = os.path.basename(src.rel.rstrip("/")) or os.path.basename(src.path)
                target = os.path.join(spec.dest, name)
            else:
                parent = os.path.dirname(spec.dest.rstrip("/"))
                _mkdirs(rootfs, parent or "/", owner)
                target = spec.dest.rstrip("/")
            copy_tree(ctx, src, rootfs, target, owner, spec.chmod)


def do_workdir(rootfs: str, path: str) -> None:
    _mkdirs(rootfs, path, None)
