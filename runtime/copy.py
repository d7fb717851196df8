"""`cp` in both directions, with docker's rules for files, directories and trailing '/.'.

A running container is reached through an fd on /proc/PID/root; a stopped one has its rootfs
mounted in a private mount namespace of a forked child, so nothing stays mounted on the host.
Either way every file is touched through runtime/inroot.py: resolved by the kernel inside the
container's root, so a symlink in the container never leads to a host file.
"""
from __future__ import annotations

import errno
import json
import os
import posixpath
import stat

from nsbox.runtime import inroot
from nsbox.runtime import state as S
from nsbox.runtime.errors import InvalidArgument, NotFound, NsboxError


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        ref, _, path = arg.partition(":")
        return ref, path or "/"
    return None, arg


def _base(path: str, root: inroot.Root) -> str:
    return posixpath.basename(root.norm(path).rstrip("/")) or "."


def _copy(sroot: inroot.Root, spath: str, droot: inroot.Root, dpath: str, follow: bool,
          archive: bool, missing: str, map_ids=None) -> list[str]:
    """docker's cp rules between two roots; returns what was skipped (devices, sockets)."""
    opts = inroot.CopyOptions(keep_owner=archive, map_ids=map_ids)
    contents_only = spath.endswith("/.") or spath in (".", "/") or (sroot.in_root and sroot.norm(spath) == "/")
    try:
        src = sroot.locate(spath, follow=follow)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(missing) from None
    with src:
        if src.st is None:
            raise NotFound(missing)
        try:
            dst = droot.locate(dpath, follow=True)   # docker follows a link at the destination (inside its root)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("destination parent directory does not exist") from None
        with dst:
            dst_is_dir = dst.st is not None and stat.S_ISDIR(dst.st.st_mode)
            if stat.S_ISDIR(src.st.st_mode):
                if dst.st is not None and not dst_is_dir:
                    raise InvalidArgument("cannot copy a directory to a file")
                if dst_is_dir and contents_only:
                    _children(src, dst, opts, dpath)
                elif dst_is_dir:
                    _into(src, dst, _base(spath, sroot), opts, dpath)
                else:
                    inroot.copy_entry(src, dst.dirfd, dst.name, opts, dpath)
            elif dst_is_dir:
                _into(src, dst, _base(spath, sroot), opts, dpath)
            elif dpath.endswith("/"):
                raise InvalidArgument(f"destination directory {dpath} must exist")
            else:
                inroot.copy_entry(src, dst.dirfd, dst.name, opts, dpath)
    return opts.skipped


def _open_dir(e: inroot.Entry) -> int:
    return os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=e.dirfd)


def _into(src: inroot.Entry, dst: inroot.Entry, name: str, opts, label: str) -> None:
    dfd = _open_dir(dst)
    try:
        inroot.copy_entry(src, dfd, name, opts, f"{label.rstrip('/')}/{name}")
    finally:
        os.close(dfd)


def _children(src: inroot.Entry, dst: inroot.Entry, opts, label: str) -> None:
    dfd = _open_dir(dst)
    try:
        inroot.copy_children(src, dfd, opts, label)
    finally:
        os.close(dfd)


def _errors(fn):
    """OSErrors become one-line messages without host paths (the store's, /proc/PID/root)."""
    try:
        return fn()
    except inroot.CopyError as e:
        raise InvalidArgument(str(e)) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidArgument("too many levels of symbolic links") from None
        raise NsboxError(f"copy failed: {os.strerror(e.errno) if e.errno else e}") from None


def in_rootfs(engine, rec, fn):
    """fn(root: inroot.Root) with the container's filesystem as root, running or not; returns
    fn's JSON-able result."""
    st = engine.state(rec)
    if st.Status in (S.RUNNING, S.PAUSED) and st.Pid:
        try:
            root = inroot.Root.at(f"/proc/{st.Pid}/root")
        except OSError:
            root = None
        # the pid must still be our PID 1 AFTER the fd is open: a recycled pid's root is the host's
        if root is not None and S.alive(st.Pid, st.PidStart):
            with root:
                return fn(root)
        if root is not None:
            root.close()
        st = engine.state(rec)
        if st.Status in (S.RUNNING, S.PAUSED):
            raise NsboxError("container changed state during the copy; try again")
    return _in_stopped(rec.config(), fn)


def _in_stopped(cfg: dict, fn):
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out: dict = {}
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
            with inroot.Root.at(root) as r_:
                out["result"] = fn(r_)
        except NsboxError as e:
            out = {"kind": type(e).__name__, "error": str(e)}
        except BaseException as e:
            out = {"kind": "NsboxError", "error": f"copy failed: {type(e).__name__}"}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    try:
        out = json.loads(data)
    except ValueError:
        raise NsboxError("copy failed: the copying process died") from None
    if "error" in out:
        cls = {"NotFound": NotFound, "InvalidArgument": InvalidArgument}.get(out["kind"], NsboxError)
        raise cls(out["error"])
    return out.get("result")


def copy(engine, src: str, dest: str, follow_link: bool = False, archive: bool = False) -> list[str]:
    """Returns the paths that were not copied (device nodes and sockets)."""
    sref, spath = _split(src)
    dref, dpath = _split(dest)
    if (sref is None) == (dref is None):
        raise InvalidArgument("copying between containers is not supported" if sref else
                              "must specify at least one container source")
    if sref is not None:
        rec = engine.get(sref)
        missing = f"Could not find the file {spath} in container {sref}"

        def out(root: inroot.Root):
            with inroot.Root.host() as host:
                return _errors(lambda: _copy(root, spath, host, dpath, follow_link, archive, missing))
        return in_rootfs(engine, rec, out) or []
    rec = engine.get(dref)
    if not os.path.lexists(spath):
        raise NotFound(f"stat {spath}: no such file or directory")

    def into(root: inroot.Root):
        with inroot.Root.host() as host, _as_container_root(rec.config()):
            return _errors(lambda: _copy(host, spath, root, dpath, follow_link, archive,
                                         f"stat {spath}: no such file or directory",
                                         _to_host_ids(rec.config())))
    return in_rootfs(engine, rec, into) or []


def _to_host_ids(cfg: dict):
    """cp -a keeps the source's ids as the container's ids: in a user namespace, the host ids they
    map to (what both an idmapped rootfs and a chowned copy store for them)."""
    linux = cfg.get("Spec", {}).get("linux", {})
    if not linux.get("uidMappings"):
        return None
    from nsbox.runtime import userns as U
    return U.shift_ids(U.maps_from_oci(linux["uidMappings"]), U.maps_from_oci(linux["gidMappings"]))


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
