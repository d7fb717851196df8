"""Helpers shared by test modules (a module of its own: every test folder may have a conftest)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

NSBOX_BIN = os.path.join(os.path.dirname(sys.executable), "nsbox")


def wait_for(pred, timeout: float = 20.0, step: float = 0.05):
    """Poll until pred() is truthy (for state changes, never as a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def lock_is_free(path: str) -> bool:
    """Could an flock on `path` be taken right now? (a missing file is free)"""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def http_answers(url: str, prefix: str = "hello-") -> bool:
    """One GET: does the server answer with a body starting with prefix? (loopback or nsbox's own addresses only)"""
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode().startswith(prefix)
    except OSError:
        return False


def build_static_c(base: str, name: str, source: str) -> str:
    """Compile C source into <base>/<name>/<name>, static (it runs inside busybox); skips without gcc."""
    import pytest
    if not shutil.which("gcc"):
        pytest.skip(f"gcc is needed to build the static {name}")
    d = os.path.join(base, name)
    os.makedirs(d, exist_ok=True)
    src, out = os.path.join(d, name + ".c"), os.path.join(d, name)
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run(["gcc", "-static", "-O1", "-o", out, src], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static {name}: {r.stderr[-300:]}")
    return out


def tree_snapshot(root) -> dict:
    """Every entry below root, by relative path: mode, mtime, link target and file content.
    Two equal snapshots mean nothing in the tree was created, removed, written or touched."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.islink(p):
                data = os.readlink(p).encode()
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    data = f.read()
            else:
                data = b""
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_mtime_ns, data)
    return out
