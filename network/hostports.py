"""Host port reservation for published ports: a registry under flock plus a bind() probe.

nsbox publishes with kernel DNAT and holds no socket on the host port (no docker-proxy), so two checks
catch conflicts: the registry (another nsbox container of this root maps it) and a bind() probe (a host
process listens on it). A host process that binds the port *later* is not detected; its traffic to
non-local clients is shadowed by the DNAT rule, as with docker --userland-proxy=false.
"""
from __future__ import annotations

import errno
import os
import socket

from nsbox.runtime.errors import Conflict
from nsbox.runtime.paths import Paths

from nsbox.network import fileio
from nsbox.network.model import PortMapping


def _file(paths: Paths) -> str:
    return os.path.join(paths.networks, "ports.json")


def _lock(paths: Paths) -> str:
    return os.path.join(paths.networks, "ports.lock")


def _overlaps(a_ip: str, b_ip: str) -> bool:
    return not a_ip or not b_ip or a_ip == b_ip


def _probe(host_ip: str, port: int, proto: str) -> int:
    """bind() the port (0 = let the kernel pick one); returns the port, raises OSError(EADDRINUSE)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT leftovers are no conflict
        s.bind((host_ip or "0.0.0.0", port))
        if proto == "tcp":
            s.listen(1)   # with SO_REUSEADDR, only listen() detects another listener on the same port
        return s.getsockname()[1]


def reserve(paths: Paths, cid: str, wanted: list[PortMapping]) -> list[PortMapping]:
    """Resolve free/ranged host ports and record them; all or nothing."""
    with fileio.locked(_lock(paths)):
        table: list[dict] = fileio.read_json(_file(paths), []) or []

        def taken(ip: str, port: int, proto: str) -> bool:
            return any(r["proto"] == proto and r["port"] == port and _overlaps(r["ip"], ip) for r in table)

        out: list[PortMapping] = []
        mine: list[dict] = []
        for m in wanted:
            port = _choose(m, lambda p: taken(m.host_ip, p, m.protocol)
                           or any(r["proto"] == m.protocol and r["port"] == p and _overlaps(r["ip"], m.host_ip)
                                  for r in mine))
            mine.append({"cid": cid, "ip": m.host_ip, "port": port, "proto": m.protocol})
            out.append(PortMapping(m.container_port, m.protocol, m.host_ip, port))
        if mine:
            fileio.write_json(_file(paths), table + mine)
        return out


def _choose(m: PortMapping, taken) -> int:
    where = f"{m.host_ip or '0.0.0.0'}"
    if m.host_port and not m.host_port_end:
        if taken(m.host_port):
            raise Conflict(f"host port {where}:{m.host_port}/{m.protocol} is already allocated by another container")
        try:
            return _probe(m.host_ip, m.host_port, m.protocol)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise Conflict(f"host port {where}:{m.host_port}/{m.protocol} is already in use") from None
            raise Conflict(f"cannot use host port {where}:{m.host_port}/{m.protocol}: {e.strerror}") from None
    candidates = range(m.host_port, m.host_port_end + 1) if m.host_port else [0] * 64
    for cand in candidates:
        try:
            port = _probe(m.host_ip, cand, m.protocol)
        except OSError:
            continue
        if not taken(port):
            return port
    rng = f"{m.host_port}-{m.host_port_end}" if m.host_port else "the ephemeral range"
    raise Conflict(f"no free host port in {rng} on {where} for {m.container_port}/{m.protocol}")


def holders(paths: Paths) -> set[str]:
    """Ids of the containers holding a reservation (read without the lock: the file is replaced whole)."""
    return {r["cid"] for r in fileio.read_json(_file(paths), []) or []}


def release(paths: Paths, cid: str) -> None:
    release_where(paths, lambda c: c == cid)


def release_where(paths: Paths, dead) -> None:
    if not os.path.exists(_file(paths)):
        return
    with fileio.locked(_lock(paths)):
        table = fileio.read_json(_file(paths), []) or []
        keep = [r for r in table if not dead(r["cid"])]
        if len(keep) != len(table):
            fileio.write_json(_file(paths), keep)
