"""Fixtures for the resource tests: a static C memory hog to bind-mount into busybox (host lane; the
VM-lane tests use _helpers.hog(), a busybox shell that allocates). Cgroup helpers live in _helpers.py."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


MEMHOG_C = """
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 256;
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("memhog: malloc failed at %ld MiB\\n", i); return 1; }
        memset(p, 0xab, 1 << 20);
        if (i % 16 == 0) { printf("memhog: %ld MiB touched\\n", i); fflush(stdout); }
    }
    printf("memhog: done, %ld MiB touched\\n", mib);
    return 0;
}
"""


@pytest.fixture(scope="session")
def memhog(nsbox_env) -> str:
    """A static binary that allocates and touches N MiB (busybox has no real allocator)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static memory hog")
    d = os.path.join(nsbox_env["base"], "memhog")
    os.makedirs(d, exist_ok=True)
    src, out = os.path.join(d, "memhog.c"), os.path.join(d, "memhog")
    with open(src, "w") as f:
        f.write(MEMHOG_C)
    r = subprocess.run(["gcc", "-static", "-O1", "-o", out, src], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static memhog: {r.stderr[-300:]}")
    return out
