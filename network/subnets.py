"""Subnet/gateway parsing and picking a subnet that does not clash with the host (pure, no pyroute2)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from nsbox.runtime.errors import InvalidArgument

Net = ipaddress.IPv4Network

# docker's default pools: 172.17-31.0.0/16, then 192.168.0-240.0/20
DEFAULT_POOLS: tuple[str, ...] = tuple(f"172.{i}.0.0/16" for i in range(17, 32)) + tuple(
    f"192.168.{i}.0/20" for i in range(0, 256, 16))


def parse_subnet(text: str) -> Net:
    try:
        net = ipaddress.IPv4Network(text.strip(), strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {text!r}: {e}") from None
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text!r} is too small (prefix must be /30 or shorter)")
    return net


def parse_gateway(text: str | None, net: Net) -> ipaddress.IPv4Address:
    """The gateway defaults to the first host address, like docker."""
    if not text:
        return net.network_address + 1
    try:
        gw = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid gateway {text!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {gw} is not a usable address of {net}")
    return gw


def host_routes(proc_route: str = "/proc/net/route") -> list[Net]:
    """IPv4 routes of the host's main table, read from procfs (no netlink needed). The default route is skipped."""
    nets: list[Net] = []
    try:
        with open(proc_route) as f:
            next(f)
            for line in f:
                cols = line.split()
                dst, mask = int(cols[1], 16), int(cols[7], 16)
                if mask == 0:
                    continue
                d = ipaddress.IPv4Address(dst.to_bytes(4, "little"))
                m = ipaddress.IPv4Address(mask.to_bytes(4, "little"))
                nets.append(ipaddress.IPv4Network(f"{d}/{m}", strict=False))
    except FileNotFoundError:
        pass
    return nets


def pick_free_subnet(taken: Iterable[Net], pools: Iterable[str] = DEFAULT_POOLS) -> Net:
    taken = list(taken)
    for cand in pools:
        net = ipaddress.IPv4Network(cand)
        if not any(net.overlaps(t) for t in taken):
            return net
    raise InvalidArgument("no free subnet left in the default pools; pass --subnet")


def mac_for_ip(ip: str) -> str:
    """docker's scheme: 02:42 + the four address bytes (locally administered, stable, unique per address)."""
    b = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)
