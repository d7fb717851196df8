"""The runtime's one door into network/: container config in, NetworkStatus dict out.

Imported only when a container uses a bridge network, so `--network none` never loads
pyroute2.
"""
from __future__ import annotations

from nsbox.runtime.paths import Paths


def validate_request(paths: Paths, cfg: dict) -> dict:
    """Parse -p/-P at create time (errors become exit 125 before anything exists)."""
    return {}


def network_exists(paths: Paths, name: str) -> bool:
    return False


def setup_container(paths: Paths, cid: str, cfg: dict) -> tuple[str, dict]:
    from nsbox.runtime.errors import NsboxError
    raise NsboxError("bridge networking is not available yet; use --network none or host")


def teardown(paths: Paths, cid: str, status: dict) -> None:
    return None


def hosts_entries(paths: Paths, cid: str) -> list[tuple[str, list[str]]]:
    return []
