"""Container-less filesystem steps (COPY/ADD/WORKDIR): a new layer made through a private overlay.

A forked child enters its own mount namespace, mounts the stage image's layers + a fresh upper at
`merged` (and, for COPY --from, the source image read-only at `src`), runs the step there, and
exits; the mounts vanish with its namespace, and the upper dir is exactly the step's diff, with
the real parent directories' metadata (overlay copies them up) and symlinked paths resolved
inside the image. Everything lives in the store's tmp/ (removed by GC if we are killed).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from typing import Callable

from nsbox.runtime.errors import InvalidArgument, NsboxError


def _lowers(store, diff_ids: list[str]) -> list[str]:
    return [store.layers.ensure_extracted(d) for d in reversed(diff_ids)] or [store.layers.empty_dir()]


def run_in_overlay(store, diff_ids: list[str], fn: Callable[[str, str | None], None],
                   src_diff_ids: list[str] | None = None) -> str | None:
    """fn(merged_root, src_root) runs in a child; returns the new layer's diff_id (None if no change)."""
    from nsbox.image.graphdriver import OVERLAY
    if store.driver_name != OVERLAY:
        raise NsboxError("nsbox build needs the overlay storage driver (this store uses the copy driver)")
    store.init()
    from nsbox.image.leftovers import owned
    tmp = tempfile.mkdtemp(dir=store.layers.tmp, prefix=owned("build-"))
    try:
        dirs = {k: os.path.join(tmp, k) for k in ("upper", "work", "merged", "src")}
        for d in dirs.values():
            os.mkdir(d, 0o755)
        lowers = _lowers(store, diff_ids)
        src_lowers = _lowers(store, src_diff_ids) if src_diff_ids is not None else None
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            code = 0
            try:
                _child(lowers, dirs, src_lowers, fn)
            except BaseException as e:
                code = 1
                from nsbox.runtime.fsutil import disk_full, no_space
                if disk_full(e):  # say which path filled up (the step's upper layer, under the store)
                    e = no_space(e, [dirs["upper"], store.layers.tmp])
                msg = str(e) if isinstance(e, NsboxError) else f"{type(e).__name__}: {e}"
                if os.environ.get("NSBOX_DEBUG"):
                    msg += "\n" + traceback.format_exc()
                try:
                    os.write(w, json.dumps({"error": msg, "invalid": isinstance(e, InvalidArgument)}).encode())
                except OSError:
                    pass
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if data or os.waitstatus_to_exitcode(status) != 0:
            info = json.loads(data) if data else {"error": f"build step process failed ({status})"}
            raise (InvalidArgument if info.get("invalid") else NsboxError)(info["error"])
        if not os.listdir(dirs["upper"]):
            return None
        diff_id, _ = store.layers.layer_from_dir(dirs["upper"])
        return diff_id
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child(lowers: list[str], dirs: dict, src_lowers: list[str] | None, fn) -> None:
    from nsbox.runtime import linux
    sc = linux.Syscalls()
    sc.unshare(linux.CLONE_NEWNS)
    sc.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.overlay_mount(sc, lowers, dirs["upper"], dirs["work"], dirs["merged"])
    src = None
    if src_lowers is not None:
        src = dirs["src"]
        if len(src_lowers) == 1:   # overlay needs two lowers without an upper; one layer is a plain dir
            sc.mount(src_lowers[0], src, None, linux.MS_BIND)
        else:
            linux.overlay_mount(sc, src_lowers, None, None, src)
    os.umask(0o022)
    fn(dirs["merged"], src)
