"""Fixtures for the image store tests: a private state root per test, CLI runner, mount-ns helper."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import tarfile
import traceback

import pytest

from nsbox.runtime.paths import Paths

from nsbox_testlib import NSBOX_BIN as NSBOX  # this venv's CLI: the tree under test, not the main one


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    yield p
    from nsbox.runtime.preload import stop_server
    stop_server(p.runroot)  # a root of its own: any preload server for it goes with the test


# a root per test: run the CLI in-process (no preload server per test), which these tests cover
CLI_ENV = {**os.environ, "NSBOX_PRELOAD": "0"}


@pytest.fixture
def store(paths):
    from nsbox.image.store import ImageStore
    return ImageStore(paths)


@pytest.fixture
def nsbox(paths):
    """Run the real CLI against this test's root: nsbox("images", input=b"...") -> CompletedProcess."""
    def run(*args, input: bytes | None = None, check: bool = True):
        p = subprocess.run([NSBOX, "--root", paths.root, "--runroot", paths.runroot, *args],
                           input=input, capture_output=True, timeout=300, env=CLI_ENV)
        if check and p.returncode != 0:
            raise AssertionError(f"nsbox {' '.join(args)} -> {p.returncode}\n{p.stderr.decode()}")
        return p
    return run


def in_mount_ns(fn, *args):
    """Run fn(*args) in a forked child inside a private mount namespace; return its (pickled) result.

    Everything the child mounts vanishes with it, so no test can leave a mount behind.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            from nsbox.runtime import linux
            sc = linux.Syscalls()
            sc.unshare(linux.CLONE_NEWNS)
            sc.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            out = ("ok", fn(*args))
        except BaseException as e:
            out = ("err", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        with os.fdopen(w, "wb") as f:
            f.write(pickle.dumps(out))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "err":
        raise AssertionError("child failed: " + val)
    return val


def mount_plan(plan, target: str) -> None:
    """What the container init does with a RootfsPlan (call inside in_mount_ns)."""
    from nsbox.runtime import linux
    sc = linux.Syscalls()
    os.makedirs(target, exist_ok=True)
    if plan.kind == "overlay":
        linux.overlay_mount(sc, plan.lowerdirs, plan.upper, plan.work, target)
    else:
        sc.mount(plan.rootfs, target, None, linux.MS_BIND | linux.MS_REC)


def make_tar(entries: list[tuple], fmt=tarfile.PAX_FORMAT) -> bytes:
    """entries: (name, kind, payload) with kind in file|dir|sym|link|chr|blk|fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for e in entries:
            name, kind = e[0], e[1]
            payload = e[2] if len(e) > 2 else None
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else (payload or "").encode()
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = payload or (0, 0)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            tar.addfile(ti)
    return buf.getvalue()
