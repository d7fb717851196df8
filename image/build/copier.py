"""COPY/ADD/WORKDIR file operations inside a mounted rootfs (run by overlayfs.run_in_overlay's child).

docker's rules: a directory source copies its CONTENTS; the destination is a directory when it
ends with `/` (or is `.`), when there are several sources, or when it already is one; relative
destinations are resolved against WORKDIR by the caller; new files are owned by 0:0 unless
--chown (COPY --from keeps the source's owners); ADD unpacks local tar/tar.gz/tar.xz/tar.bz2.
"""
from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass

from nsbox.image.build.context import Context, Source
from nsbox.runtime import inroot
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


def _lookup(root: inroot.Root, fname: str, name: str, what: str) -> int:
    try:
        fd = root.open(f"/etc/{fname}", os.O_RDONLY)
    except OSError:
        fd = None
    if fd is not None:
        with open(fd, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3 and parts[0] == name and parts[2].isdigit():
                    return int(parts[2])
    raise InvalidArgument(f"unable to convert {what} {name!r} to {what}id: no matching entries in {fname} file")


def resolve_chown(root: inroot.Root, chown: str) -> tuple[int, int] | None:
    if not chown:
        return None
    user, _, group = chown.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {chown!r}")
    uid = int(user) if user.isdigit() else _lookup(root, "passwd", user, "user")
    if not group:
        return uid, uid      # docker: a lone user (name or id) uses the same numeric id as the group
    gid = int(group) if group.isdigit() else _lookup(root, "group", group, "group")
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


def _mkdirs(root: inroot.Root, path: str, owner: tuple[int, int] | None) -> None:
    """mkdir -p inside the image (symlinks resolved inside it); new dirs get `owner` (default root)."""
    cur = "/"
    for p in [p for p in root.norm(path).split("/") if p]:
        cur = posixpath.join(cur, p)
        with root.locate(cur, follow=True) as e:
            if e.st is None:
                os.mkdir(e.name, 0o755, dir_fd=e.dirfd)
                os.chown(e.name, *(owner or (0, 0)), dir_fd=e.dirfd, follow_symlinks=False)
            elif not stat.S_ISDIR(e.st.st_mode):
                raise InvalidArgument(f"cannot create directory {cur}: a file with that name exists in the image")


def copy_tree(ctx: Context, src: Source, root: inroot.Root, image_target: str, owner, chmod) -> None:
    """Copy a file, or a directory's contents, to `image_target` (a path inside the image).

    Both ends are opened through runtime/inroot.py: parents resolve inside the image (and
    inside the context or the --from stage), and names are never followed, so a symlink under
    the destination (say /app/sub -> /etc) or in the source never reaches a host file.
    """
    with inroot.Root.at(ctx.root) as sroot:
        _copy_tree(ctx, sroot, src, root, image_target, owner, chmod)


def _copy_tree(ctx: Context, sroot: inroot.Root, src: Source, root: inroot.Root, image_target: str, owner,
               chmod) -> None:
    opts = inroot.CopyOptions(keep_owner=owner is None, owner=owner, chmod=chmod, replace_dirs=True)
    dirs: list[tuple[str, os.stat_result, bool]] = []
    base = "" if src.rel == "." else src.rel
    for rel, _path, st in ctx.walk(src):
        if not rel and stat.S_ISDIR(st.st_mode):
            with root.locate(image_target, follow=True) as e:
                if e.st is None:
                    os.mkdir(e.name, 0o755, dir_fd=e.dirfd)
                    os.chown(e.name, *(owner or (st.st_uid, st.st_gid)), dir_fd=e.dirfd, follow_symlinks=False)
            dirs.append((image_target, st, True))   # docker: the dest dir takes the source dir's mtime
            continue
        target = posixpath.join(image_target, rel) if rel else image_target
        # the walk's own path is only a name list: the entry is reopened in the source's root
        # (the top one following links there, as docker does, the rest never)
        with sroot.locate(posixpath.join(base, rel) if rel else (base or "/"), follow=not rel) as s:
            if s.st is None:
                continue   # gone since the walk listed it
            with root.locate(target) as e:
                fd = inroot.place(s.dirfd, s.name, s.st, e.dirfd, e.name, opts, target)
        if fd is not None:
            os.close(fd)
            dirs.append((target, st, False))
    for target, st, follow in reversed(dirs):
        try:
            with root.locate(target, follow=follow) as e:
                os.utime(e.name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=e.dirfd, follow_symlinks=False)
        except OSError:
            pass


def do_copy(rootfs: str, ctx: Context, spec: CopySpec, what: str = "COPY") -> None:
    with inroot.Root.at(rootfs) as root:
        _do_copy(root, ctx, spec, what)


def _do_copy(root: inroot.Root, ctx: Context, spec: CopySpec, what: str) -> None:
    owner = resolve_chown(root, spec.chown)
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
    if len(srcs) > 1 and not spec.dest_is_dir:
        raise InvalidArgument(f"When using {what} with more than one source file, the destination must be a "
                              f"directory and end with a /")
    try:
        with root.locate(spec.dest, follow=True) as d:
            dest_is_dir = many or (d.st is not None and stat.S_ISDIR(d.st.st_mode))
    except (FileNotFoundError, NotADirectoryError):
        dest_is_dir = many
    for src in srcs:
        st = os.stat(src.path)
        if stat.S_ISDIR(st.st_mode):
            _mkdirs(root, spec.dest, owner)
            copy_tree(ctx, src, root, spec.dest, owner, spec.chmod)
        elif spec.add and is_archive(src.path):
            _mkdirs(root, spec.dest, owner)
            from nsbox.image import tarsafe
            from nsbox.image.layers import decompressed
            dfd = root.open(spec.dest, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with open(src.path, "rb") as f:
                    tarsafe.extract(decompressed(f), dfd, mode="apply")
            finally:
                os.close(dfd)
        else:
            if dest_is_dir:
                _mkdirs(root, spec.dest, owner)
                name = os.path.basename(src.rel.rstrip("/")) or os.path.basename(src.path)
                target = posixpath.join(spec.dest, name)
            else:
                parent = posixpath.dirname(spec.dest.rstrip("/"))
                _mkdirs(root, parent or "/", owner)
                target = spec.dest.rstrip("/")
            copy_tree(ctx, src, root, target, owner, spec.chmod)


def do_workdir(rootfs: str, path: str) -> None:
    with inroot.Root.at(rootfs) as root:
        _mkdirs(root, path, None)
