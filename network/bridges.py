"""Which state root owns a bridge (pyroute2-free: sysfs and one ioctl).

Two roots on one machine (a user's and a test's, or two users') must never attach to, reconfigure or
delete each other's bridge. A bridge nsbox makes carries the ifalias `nsbox-net:<root tag>:<net id12>`
from the moment it exists (set in the same netlink request that creates it). A bridge without an alias
that carries the network's gateway address was made by an older nsbox for this very network: it is
ours, and gets marked. Anything else by that name is someone else's.
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct

from nsbox.runtime.errors import Conflict
from nsbox.runtime.paths import Paths

from nsbox.network import fileio, subnets
from nsbox.network.model import NetworkConfig

ABSENT, OURS, LEGACY, FOREIGN = "absent", "ours", "legacy", "foreign"
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1


def alias(paths: Paths, cfg: NetworkConfig) -> str:
    return f"nsbox-net:{fileio.root_tag(paths)}:{cfg.id[:12]}"


def _read(name: str, attr: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/{attr}") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def primary_address(name: str) -> str:
    """The interface's first IPv4 address, or "" (one ioctl; no netlink library needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return ""
    return socket.inet_ntoa(res[20:24])


def owner(paths: Paths, cfg: NetworkConfig) -> str:
    mark = _read(cfg.bridge, "ifalias")
    if mark is None:
        return ABSENT
    if mark == alias(paths, cfg):
        return OURS
    if not mark and primary_address(cfg.bridge) == cfg.gateway:
        return LEGACY
    return FOREIGN


def is_up(name: str) -> bool:
    """Made completely: a bridge is set up only after its address and sysctl (links.ensure_bridge)."""
    flags = _read(name, "flags")
    return bool(flags) and int(flags, 16) & _IFF_UP != 0


def refusal(paths: Paths, cfg: NetworkConfig) -> Conflict:
    where = ""
    if cfg.default:
        from nsbox.network.config import settings_path
        where = f': set "bridge" in {settings_path(paths)} (or NSBOX_BRIDGE) to a name of its own'
    return Conflict(f"bridge {cfg.bridge} of network {cfg.name} belongs to another nsbox state root "
                    f"or another tool; not using it{where}")


def check_subnet_unrouted(cfg: NetworkConfig) -> None:
    """A new bridge must not bring a subnet the host already routes elsewhere (another root's default
    network picked before ours had a bridge, or any other tool's): both would break."""
    net = subnets.parse_subnet(cfg.subnet)
    for r in subnets.host_routes():
        if net.overlaps(r):
            raise Conflict(f"subnet {cfg.subnet} of network {cfg.name} overlaps {r}, already routed on this "
                           f"host (another nsbox state root or another tool); give the network another subnet")


def exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")
