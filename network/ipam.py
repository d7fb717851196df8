"""IP address management: one JSON file per network, changed only under that network's flock.

paths.networks/ipam/<network id>.json = {"<ip>": {"cid", "name", "aliases"}}. The record doubles as the
endpoint registry that name resolution (hosts.py) reads: who is on the network, under which names.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.paths import Paths

from nsbox.network import config, fileio
from nsbox.network.model import NetworkConfig


def _file(paths: Paths, net_id: str) -> str:
    return os.path.join(paths.networks, "ipam", net_id + ".json")


def net_lock(paths: Paths, net_id: str) -> str:
    """Serializes IPAM and bridge creation for one network."""
    return os.path.join(paths.networks, "ipam", net_id + ".lock")


def endpoints(paths: Paths, net_id: str) -> dict[str, dict]:
    return fileio.read_json(_file(paths, net_id), {}) or {}


def allocate(paths: Paths, cfg: NetworkConfig, cid: str, ip: str | None = None,
             name: str = "", aliases: list[str] | None = None) -> str:
    net = ipaddress.IPv4Network(cfg.subnet)
    with fileio.locked(net_lock(paths, cfg.id)):
        if not config.exists(paths, cfg.id):   # removed since the caller looked it up
            raise NotFound(f"network {cfg.name} not found")
        table = endpoints(paths, cfg.id)
        if any(rec["cid"] == cid for rec in table.values()):
            raise Conflict(f"container {cid[:12]} is already connected to network {cfg.name}")
        reserved = {str(net.network_address), str(net.broadcast_address), cfg.gateway}
        if ip:
            try:
                want = ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid IP address {ip!r}") from None
            if want not in net or str(want) in reserved:
                raise InvalidArgument(f"address {ip} is not a usable address of network {cfg.name} ({cfg.subnet})")
            if str(want) in table:
                raise Conflict(f"address {ip} is already in use on network {cfg.name}")
            chosen = str(want)
        else:
            chosen = next((str(a) for a in net.hosts() if str(a) not in reserved and str(a) not in table), "")
            if not chosen:
                raise Conflict(f"no free address left on network {cfg.name} ({cfg.subnet})")
        table[chosen] = {"cid": cid, "name": name, "aliases": list(aliases or [])}
        fileio.write_json(_file(paths, cfg.id), table)
        return chosen


def release(paths: Paths, net_id: str, cid: str) -> None:
    """Idempotent: releasing an address that is not held is a no-op."""
    release_where(paths, net_id, lambda c: c == cid)


def release_where(paths: Paths, net_id: str, dead: Callable[[str], bool]) -> list[str]:
    if not os.path.exists(_file(paths, net_id)):
        return []
    with fileio.locked(net_lock(paths, net_id)):
        table = endpoints(paths, net_id)
        gone = [ip for ip, rec in table.items() if dead(rec["cid"])]
        if gone:
            for ip in gone:
                del table[ip]
            fileio.write_json(_file(paths, net_id), table)
        return gone


def forget_network(paths: Paths, net_id: str) -> None:
    fileio.remove(_file(paths, net_id))
    fileio.remove(net_lock(paths, net_id))


def networks_of(paths: Paths, cid: str) -> list[str]:
    """Ids of the networks on which cid holds an address."""
    d = os.path.join(paths.networks, "ipam")
    try:
        files = os.listdir(d)
    except FileNotFoundError:
        return []
    return [f[:-5] for f in files if f.endswith(".json")
            and any(r["cid"] == cid for r in endpoints(paths, f[:-5]).values())]
