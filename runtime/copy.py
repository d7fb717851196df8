"""`cp` in both directions, with docker's rules for files, directories and trailing '/.'.

A running container is reached through /proc/PID/root; a stopped one has its rootfs mounted
in a private mount namespace of a forked child, so nothing stays mounted on the host.
"""
from __future__ import annotations

import os
import shutil

from nsbox.runtime import state as S
from nsbox.runtime.errors import InvalidArgument, NotFound, NsboxError


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        ref, _, path = arg.partition(":")
        return ref, path or "/"
    return None, arg


def _copy(src: str, dst: str, src_label: str, follow: bool) -> None:
    contents_only = src.endswith("/.")
    if not os.path.lexists(src):
        raise NotFound(f"Could not find the file {src_label} in container" if src_label else
                       f"stat {src}: no such file or directory")
    src_is_dir = os.path.isdir(src) and (follow or not os.path.islink(src))
    if src_is_dir:
        if os.path.isdir(dst):
            target = dst if contents_only else os.path.join(dst, os.path.basename(src.rstrip("/")))
        elif os.path.exists(dst):
            raise InvalidArgument("cannot copy a directory to a file")
        else:
            if not os.path.isdir(os.path.dirname(dst.rstrip("/")) or "."):
                raise NotFound("destination parent directory does not exist")
            target = dst
        shutil.copytree(src, target, symlinks=not follow, dirs_exist_ok=True)
        return
    if os.path.isdir(dst):
        target = os.path.join(dst, os.path.basename(src))
    else:
        if dst.endswith("/"):
            raise InvalidArgument(f"destination directory {dst} must exist")
        if not os.path.isdir(os.path.dirname(dst) or "."):
            raise NotFound("destination parent directory does not exist")
        target = dst
    shutil.copy2(src, target, follow_symlinks=follow)


def _in_rootfs(engine, rec, fn) -> None:
    """Call fn(root) with the container's filesystem at root."""
    st = engine.state(rec)
    if st.Status in (S.RUNNING, S.PAUSED) and st.Pid:
        fn(f"/proc/{st.Pid}/root")
        return
    cfg = rec.config()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            from nsbox.runtime import linux as L
            from nsbox.runtime import init as I
            sc = L.RealSyscalls()
            sc.unshare(L.CLONE_NEWNS)
            sc.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
            plan, root = cfg["Rootfs"], cfg["RootfsPath"]
            linux = cfg["Spec"]["linux"]
            userns, ids = -1, (0, 0)
            if linux.get("uidMappings"):  # the same idmapped view the container has
                from nsbox.runtime.idmap import create_userns, userns_root
                userns, ids = create_userns(sc, linux["uidMappings"], linux["gidMappings"]), userns_root(linux)
                I.mount_rootfs_idmapped(sc, plan, root, userns, ids)
            elif plan["kind"] == "overlay":
                L.overlay_mount(sc, plan["lowerdirs"], plan["upper"], plan["work"], root)
            else:
                sc.mount(plan["rootfs"], root, None, L.MS_BIND | L.MS_REC)
            for m in cfg["Spec"].get("mounts", []):
                if m.get("type") == "bind" and not m["destination"].startswith("/etc/"):
                    I.do_mount(sc, root, {**m, "options": [o for o in m.get("options", []) if o != "nsbox-copyup"]},
                               userns, ids)
            fn(root)
            os._exit(0)
        except BaseException as e:
            os.write(w, f"{type(e).__name__}:{e}".encode())
            os._exit(1)
    os.close(w)
    err = b""
    while chunk := os.read(r, 4096):
        err += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if err:
        kind, _, msg = err.decode().partition(":")
        cls = {"NotFound": NotFound, "InvalidArgument": InvalidArgument}.get(kind, NsboxError)
        raise cls(msg)


def copy(engine, src: str, dest: str, follow_link: bool = False) -> None:
    from nsbox.runtime.init import safe_join
    sref, spath = _split(src)
    dref, dpath = _split(dest)
    if (sref is None) == (dref is None):
        raise InvalidArgument("copying between containers is not supported" if sref else
                              "must specify at least one container source")
    if sref is not None:
        rec = engine.get(sref)
        trail = "/." if spath.endswith("/.") else ""

        def out(root):
            inside = safe_join(root, spath) + trail
            _copy(inside, dpath, f"{sref}:{spath}" and spath, follow_link)
        _in_rootfs(engine, rec, out)
    else:
        rec = engine.get(dref)
        if not os.path.lexists(spath):
            raise NotFound(f"stat {spath}: no such file or directory")

        def into(root):
            inside = safe_join(root, dpath) + ("/" if dpath.endswith("/") else "")
            with _as_container_root(rec.config()):
                _copy(spath, inside, "", follow_link)
        _in_rootfs(engine, rec, into)


def _as_container_root(cfg: dict):
    """Files copied in belong to the container's root, as docker's cp; in a user namespace that is
    a host id of its range (and the host's root has no id on its idmapped rootfs at all)."""
    import contextlib
    linux = cfg.get("Spec", {}).get("linux", {})
    if not linux.get("uidMappings"):
        return contextlib.nullcontext()
    from nsbox.runtime import linux as L
    from nsbox.runtime.idmap import FsIdentity
    from nsbox.runtime.idmap import userns_root
    return FsIdentity(L.RealSyscalls(), *userns_root(linux))
