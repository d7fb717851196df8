"""Fixtures for the resource tests: a static C memory hog to bind-mount into busybox (host lane; the
VM-lane tests use _helpers.hog(), a busybox shell that allocates). Cgroup helpers live in _helpers.py."""
from __future__ import annotations

import pytest

from nsbox_testlib import build_static_c


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
    return build_static_c(nsbox_env["base"], "memhog", MEMHOG_C)
