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
