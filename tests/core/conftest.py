"""Fixtures for the core tests: a static C probe for the security tests (busybox cannot make raw
syscalls such as io_uring_setup, clone3 or the i386 ABI)."""
from __future__ import annotations

import os

import pytest

from nsbox_testlib import build_static_c


@pytest.fixture(scope="session")
def secprobe(nsbox_env) -> str:
    """A directory holding `secprobe` (tests/core/secprobe.c), to bind-mount read-only at /probe."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "secprobe.c")) as f:
        return os.path.dirname(build_static_c(nsbox_env["base"], "secprobe", f.read()))
