"""Fixtures for network tests on real kernel objects (helpers live in nsnet_helpers.py).

Every kernel object gets a name derived from this test's unique tag (bridge nsbt<hex>, subnet a free
10.2xx.y.0/24, nft tables nsbox-<root hash>-..., netns files under a tmp runroot); finalizers remove all
of it even on failure, then assert nothing of this root is left.
"""
from __future__ import annotations

import secrets

import pytest

from nsnet_helpers import Env, leftovers, require_root


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def subnets_taken() -> list:
    return []


@pytest.fixture
def env(tmp_path, tag, subnets_taken):
    require_root()
    e = Env(tmp_path, tag, subnets_taken)
    try:
        yield e
    finally:
        e.cleanup()
        left = leftovers(e.paths, e.bridge)
        assert not left, f"leaked: {left}"
