"""Graph drivers: how an image's layers become a container rootfs.

overlay: the container init mounts lowerdirs (extracted layers, TOP first) + the container's
         upper/work with `overlay_mount` inside its own mount namespace.
copy:    when overlay can't work (store on overlayfs, no trusted xattrs, no mknod...), the layer
         tars are applied into one flat dir per container, which the init bind-mounts.
The choice is made once per store by a real probe mount in a throwaway mount namespace.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

OVERLAY = "overlay"
COPY = "copy"


@dataclass
class RootfsPlan:
    kind: str                                   # "overlay" | "copy"
    lowerdirs: list[str] = field(default_factory=list)  # TOP layer first (overlay's leftmost is the top)
    upper: str | None = None
    work: str | None = None
    rootfs: str | None = None                   # copy: the flat rootfs dir to bind-mount
    idshift: str = ""                           # "chown": copied with host ids of a user namespace


def probe_overlay(tmp_root: str) -> str:
    """Try a real overlay mount with a whiteout and an opaque dir on the store's filesystem."""
    import shutil
    import tempfile
    from nsbox.runtime import linux
    from nsbox.image.leftovers import owned
    d = tempfile.mkdtemp(dir=tmp_root, prefix=owned("probe-"))
    try:
        for sub in ("l1", "l2", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        with open(os.path.join(d, "l2", "gone"), "w") as f:
            f.write("lower")
        pid = os.fork()
        if pid == 0:  # child: private mount ns, so nothing can leak onto the host
            code = 1
            try:
                from nsbox.image import whiteout as wh
                sc = linux.Syscalls()
                dfd = os.open(os.path.join(d, "l1"), os.O_RDONLY | os.O_DIRECTORY)
                wh.make_overlay_whiteout("gone", dfd)
                wh.set_opaque(dfd)
                sc.unshare(linux.CLONE_NEWNS)
                sc.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                linux.overlay_mount(sc, [os.path.join(d, "l1"), os.path.join(d, "l2")],
                                    os.path.join(d, "u"), os.path.join(d, "w"), os.path.join(d, "m"))
                with open(os.path.join(d, "m", "new"), "w") as f:
                    f.write("x")
                if not os.path.exists(os.path.join(d, "m", "gone")):
                    code = 0
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        return OVERLAY if os.waitstatus_to_exitcode(status) == 0 else COPY
    finally:
        shutil.rmtree(d, ignore_errors=True)


def plan_overlay(lowerdirs_top_first: list[str], rw_dir: str) -> RootfsPlan:
    upper, work = os.path.join(rw_dir, "upper"), os.path.join(rw_dir, "work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    return RootfsPlan(OVERLAY, lowerdirs_top_first, upper, work)


def plan_copy(layers, diff_ids: list[str], rw_dir: str) -> RootfsPlan:
    """Build rw_dir/rootfs once (kept across restarts, like an upperdir)."""
    rootfs = os.path.join(rw_dir, "rootfs")
    if not os.path.isdir(rootfs):
        import shutil
        import tempfile
        os.makedirs(rw_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=rw_dir, prefix=".rootfs-")
        try:
            os.chmod(tmp, 0o755)
            for diff_id in diff_ids:  # base first
                layers.apply_into(diff_id, tmp)
            os.rename(tmp, rootfs)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return RootfsPlan(COPY, rootfs=rootfs)


def release(rw_dir: str) -> None:
    """Remove a container's writable layer (upper/work or the copied rootfs). Idempotent."""
    import shutil
    for sub in ("upper", "work", "rootfs"):
        shutil.rmtree(os.path.join(rw_dir, sub), ignore_errors=True)
    if os.path.isdir(rw_dir):
        for name in os.listdir(rw_dir):
            if name.startswith(".rootfs-"):
                shutil.rmtree(os.path.join(rw_dir, name), ignore_errors=True)
