"""nsbox networking: bridges, veths, IPAM, published ports, hosts-file name resolution.

Import cost matters (`run --network none` must not pay for pyroute2): this package and every module in it
except `links` import only the stdlib and nsbox.runtime; `links` (pyroute2) is imported inside the
functions that create links. Public API (lazily re-exported here):

    attach(paths, cid, netns_path, NetworkRequest) -> NetworkStatus
    detach(paths, cid, status=None)                   # pyroute2-free, idempotent
    connect(paths, cid, netns_path, network, ip=None, aliases=None, name="") -> EndpointStatus
    disconnect(paths, cid, netns_path, network)
    reconcile(paths, alive=None) -> dict              # after kill -9
    create_netns(paths, cid) -> str / remove_netns(paths, cid)
    hosts_entries(paths, cid) / write_hosts(path, base, entries) / refresh_peers(paths, network)
    parse_publish(spec) -> list[PortMapping]; parse_exposed(spec)
    setup_container(paths, cid, cfg) -> (netns_path, status_dict); teardown(paths, cid, status_dict)  # core adapters
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "attach": "api", "detach": "api", "connect": "api", "disconnect": "api", "reconcile": "api",
    "load_status": "api", "purge": "api", "remove_network": "api", "prune_networks": "api",
    "create_netns": "netns", "remove_netns": "netns", "netns_path": "netns",
    "hosts_entries": "hosts", "write_hosts": "hosts", "refresh_peers": "hosts",
    "parse_publish": "ports", "parse_exposed": "ports",
    "NetworkRequest": "model", "EndpointRequest": "model", "NetworkStatus": "model",
    "EndpointStatus": "model", "PortMapping": "model", "NetworkConfig": "model",
    "setup_container": "container", "teardown": "container", "request_from_config": "container",
    "port_bindings": "container",
    "network_mode": "config", "create_network": "config", "get_network": "config", "list_networks": "config", "write_settings": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'nsbox.network' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nsbox.network.{mod}"), name)
