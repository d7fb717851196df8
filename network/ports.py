"""Parsing `-p/--publish` and EXPOSE specs (pure functions, property-tested)."""
from __future__ import annotations

import ipaddress

from nsbox.runtime.errors import InvalidArgument

from nsbox.network.model import PortMapping

PROTOCOLS = ("tcp", "udp")


def _port(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid port {text!r} in {spec!r}")
    return int(text)


def _range(text: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    start = _port(lo, spec)
    end = _port(hi, spec) if sep else start
    if end < start:
        raise InvalidArgument(f"invalid port range {text!r} in {spec!r}")
    return start, end


def _split_proto(spec: str) -> tuple[str, str]:
    body, sep, proto = spec.rpartition("/")
    if not sep:
        return spec, "tcp"
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}")
    return body, proto


def parse_publish(spec: str) -> list[PortMapping]:
    """`[ip:][hostPort:]containerPort[/tcp|/udp]`, with ranges (`8000-8010:80-90`).

    A container range maps pairwise to an equally long host range (or to free ports when
    the host port is left out); a host range with one container port means "any free port in it".
    """
    body, proto = _split_proto(spec.strip())
    host_ip = ""
    if body.startswith("["):
        raise InvalidArgument(f"IPv6 host addresses are not supported: {spec!r}")
    parts = body.split(":")
    if len(parts) == 1:
        host, cont = "", parts[0]
    elif len(parts) == 2:
        host, cont = parts
    elif len(parts) == 3:
        host_ip, host, cont = parts
        try:
            if host_ip:
                ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid host IP {host_ip!r} in {spec!r}") from None
    else:
        raise InvalidArgument(f"invalid publish spec {spec!r}")
    if host_ip == "0.0.0.0":
        host_ip = ""
    cstart, cend = _range(cont, spec)
    if not host:
        return [PortMapping(p, proto, host_ip) for p in range(cstart, cend + 1)]
    hstart, hend = _range(host, spec)
    if cstart == cend:
        return [PortMapping(cstart, proto, host_ip, hstart, hend if hend > hstart else 0)]
    if hend - hstart != cend - cstart:
        raise InvalidArgument(f"host and container port ranges differ in length: {spec!r}")
    return [PortMapping(c, proto, host_ip, h) for c, h in zip(range(cstart, cend + 1), range(hstart, hend + 1))]


def parse_exposed(spec: str) -> list[tuple[int, str]]:
    """EXPOSE / --expose: `80`, `80/udp`, `8000-8002/tcp`."""
    body, proto = _split_proto(spec.strip())
    start, end = _range(body, spec)
    return [(p, proto) for p in range(start, end + 1)]


def expand_publish_all(ports: list[PortMapping], exposed: list[str]) -> list[PortMapping]:
    """`-P`: every exposed port not published explicitly gets a free host port."""
    have = {m.key() for m in ports}
    out = list(ports)
    for spec in exposed:
        for port, proto in parse_exposed(spec):
            if f"{port}/{proto}" not in have:
                have.add(f"{port}/{proto}")
                out.append(PortMapping(port, proto))
    return out
