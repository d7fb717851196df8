"""RUN: a real nsbox container from the stage's current image; its upper dir becomes the layer.

The container is always removed (also on failure or Ctrl-C); after a kill -9 of the build it is
an ordinary exited/running container that `nsbox rm -f` removes. Mount points the runtime
creates for itself (/etc/hosts, /proc, ...) are dropped from the diff when the image lacked them,
the way docker keeps them in a separate init layer.
"""
from __future__ import annotations

import os
import stat
import sys

from nsbox.runtime.errors import NsboxError


class _Null:
    """A stand-in for sys.stdout/err while -q hides RUN output."""

    def __init__(self):
        self.buffer = open(os.devnull, "wb")

    def write(self, s):
        return len(s)

    def flush(self):
        pass


def run(builder, stage, argv: list[str], arg_env: list[str]) -> str:
    from nsbox.image.build.executor import BuildFailed, _empty_layer
    from nsbox.runtime import client
    from nsbox.runtime.specgen import ContainerRequest
    engine = builder.engine()
    cc = stage.config.get("config") or {}
    req = ContainerRequest(image=stage.image_id, command=list(argv), entrypoint="", env=arg_env,
                           workdir=cc.get("WorkingDir") or "", user=cc.get("User") or "",
                           network=builder.opts.network)
    rec, warnings = engine.create(req)
    out = builder.out
    removed = False
    try:
        for w in warnings:
            out(f"[Warning] {w}")
        out(f" ---> Running in {rec.id[:12]}")
        saved = sys.stdout, sys.stderr
        if builder.opts.quiet:
            sys.stdout, sys.stderr = _Null(), _Null()
        try:
            try:
                _, sock = engine.start(rec, attach=True)
            except NsboxError as e:
                code = getattr(e, "exit_code", 125)
                raise BuildFailed(f"{e}\nThe command '{' '.join(argv)}' returned a non-zero code: {code}") from None
            code = client.relay(sock, stdin=False, tty=False)
            sock.close()
        finally:
            if builder.opts.quiet:
                sys.stdout.buffer.close()
                sys.stderr.buffer.close()
            sys.stdout, sys.stderr = saved
        if code is None:
            code = engine.wait(rec).ExitCode
        if code != 0:
            raise BuildFailed(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
        cfg = rec.config()
        upper = (cfg.get("Rootfs") or {}).get("upper")
        if not upper or not os.path.isdir(upper):
            raise NsboxError("nsbox build needs the overlay storage driver (the RUN container has no upper dir)")
        _drop_mount_stubs(upper, cfg, (cfg.get("Rootfs") or {}).get("lowerdirs") or [])
        if not os.listdir(upper):
            return _empty_layer(builder.store)
        diff_id, _ = builder.store.layers.layer_from_dir(upper)
        return diff_id
    finally:
        if not removed:
            try:
                engine.rm(rec, force=True)
            except NsboxError:
                pass
            out(f"Removing intermediate container {rec.id[:12]}")


def _drop_mount_stubs(upper: str, cfg: dict, lowers: list[str]) -> None:
    dests = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
    for m in (cfg.get("Spec") or {}).get("mounts") or []:
        dests.add(m.get("destination", ""))
    for d in sorted(dests, key=len, reverse=True):
        rel = d.strip("/")
        if not rel:
            continue
        p = os.path.join(upper, rel)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if any(os.path.lexists(os.path.join(lo, rel)) for lo in lowers):
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(p)
        elif stat.S_ISDIR(st.st_mode) and not os.listdir(p):
            os.rmdir(p)
        else:
            continue
    # parents the runtime created (scratch) or copied up (overlay, for /etc/hosts) only for the stubs
    for d in sorted(dests, key=len, reverse=True):
        parent = os.path.dirname(d.strip("/"))
        while parent and _redundant_dir(os.path.join(upper, parent), parent, lowers):
            os.rmdir(os.path.join(upper, parent))
            parent = os.path.dirname(parent)


def _redundant_dir(path: str, rel: str, lowers: list[str]) -> bool:
    """An empty, non-opaque upper dir that adds nothing over the lower one (or stands for nothing)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or os.listdir(path):
            return False
        if os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
            return False
    except OSError as e:
        import errno
        if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            return False
    for lo in lowers:   # top first: the first lower that has the path decides
        try:
            ls = os.lstat(os.path.join(lo, rel))
        except OSError:
            continue
        return stat.S_ISDIR(ls.st_mode) and (ls.st_mode, ls.st_uid, ls.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    return True
