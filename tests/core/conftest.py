"""Fixtures for the core tests: a static C probe for the security tests (busybox cannot make raw
syscalls such as io_uring_setup, clone3 or the i386 ABI)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def secprobe(nsbox_env) -> str:
    """A directory holding `secprobe` (tests/core/secprobe.c), to bind-mount read-only at /probe."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static security probe")
    d = os.path.join(nsbox_env["base"], "secprobe")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "secprobe.c")
    r = subprocess.run(["gcc", "-static", "-O1", "-o", os.path.join(d, "secprobe"), src],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the static security probe: {r.stderr[-300:]}")
    return d
