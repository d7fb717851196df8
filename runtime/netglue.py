"""The runtime's one door into network/: container config in, NetworkStatus dict out.

Imported only when a container uses a bridge network (or at create, for parsing -p, which
loads no pyroute2), so `--network none` never pays for netlink code.
"""
from __future__ import annotations

from nsbox.runtime.paths import Paths


def validate_request(paths: Paths, cfg: dict) -> dict:
    """Parse -p at create time (errors become exit 125 before anything exists)."""
    from nsbox.network.container import port_bindings
    from nsbox.network.config import network_mode
    network_mode(cfg["HostConfig"].get("NetworkMode") or "bridge")
    return port_bindings(cfg["NetworkRequest"]["publish"])


def network_exists(paths: Paths, name: str) -> bool:
    from nsbox.network.config import get_network
    from nsbox.runtime.errors import NotFound
    try:
        get_network(paths, name)
        return True
    except NotFound:
        return False


def setup_container(paths: Paths, cid: str, cfg: dict) -> tuple[str, dict]:
    from nsbox.network.container import setup_container as setup
    return setup(paths, cid, cfg)


def teardown(paths: Paths, cid: str, status: dict) -> None:
    from nsbox.network.container import teardown as down
    down(paths, cid, status or None)


def hosts_entries(paths: Paths, cid: str) -> list[tuple[str, list[str]]]:
    from nsbox.network.hosts import hosts_entries as entries
    return entries(paths, cid)


def render_hosts(base: str, entries: list[tuple[str, list[str]]]) -> str:
    from nsbox.network.hosts import render
    return render(base, entries)


def reconcile(paths: Paths, claim, mine: str = "") -> None:
    from nsbox.network.api import reconcile as net_reconcile
    net_reconcile(paths, claim=claim, mine=mine)


def purge(paths: Paths) -> None:
    """Remove every network object of this state root (tests)."""
    from nsbox.network.api import purge as net_purge
    net_purge(paths)
