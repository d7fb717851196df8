"""Helpers shared by test modules (a module of its own: every test folder may have a conftest)."""
from __future__ import annotations

import os
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
