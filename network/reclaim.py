"""Reclaiming what a kill -9 left behind, without ever taking what a live or starting container owns.

The order is the whole point. Every object of this root is listed FIRST (netns files, DNAT tables, veths,
addresses, host ports, status records), and only then is each owner judged, one at a time, inside
`claim(cid)`. An object made after the listing is simply not seen, so a container that starts while we
judge the others keeps everything it makes; an object seen in the listing was made by a start that had
already begun, and the claim tells "still starting or running" from "gone". Deciding who is alive first
and listing afterwards (the old order) took the DNAT table of any container that started in between.

`claim(cid)` is a context manager yielding True when cid's objects are garbage; the core's claim holds
the container's start lock while it yields True, so nobody can start it and make new objects until we
have removed the old ones (runtime/cleanup.py: claim_network_owner).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from nsbox.runtime.errors import NotFound
from nsbox.runtime.paths import Paths

from nsbox.network import config, fileio, hostports, hosts, ipam, nat, netns

Claim = Callable[[str], AbstractContextManager[bool]]


@dataclass
class Owned:
    """What one container id holds, as listed before anyone is judged."""
    netns: bool = False
    tables: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)     # ids of networks where it holds an address
    ports: bool = False
    status: bool = False


def status_dir(paths: Paths) -> str:
    return os.path.join(paths.networks, "endpoints")


def veth_tag(paths: Paths) -> str:
    """ifalias prefix of this root's host veth ends (the container id follows it)."""
    return f"nsbox:{fileio.root_tag(paths)}:"


def links_with_alias_prefix(tag: str) -> list[tuple[str, str]]:
    out = []
    for dev in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{dev}/ifalias") as f:
                alias = f.read().strip()
        except OSError:
            continue
        if alias.startswith(tag):
            out.append((dev, alias))
    return out


def list_owned(paths: Paths) -> dict[str, Owned]:
    """Every object of this root, by owner. DNAT tables carry only 12 characters of the id: they are
    matched against the container directories listed AFTER the tables (a container's directory exists
    before its start makes the table), and a table that matches none is keyed by its short id."""
    owned: dict[str, Owned] = {}

    def of(cid: str) -> Owned:
        return owned.setdefault(cid, Owned())

    cprefix = nat.prefix(paths) + "c"
    tables = nat.list_tables(cprefix)
    for cid in netns.list_netns(paths):
        of(cid).netns = True
    tag = veth_tag(paths)
    for dev, alias in links_with_alias_prefix(tag):
        of(alias[len(tag):]).veths.append(dev)
    for cfg in config.existing_networks(paths):
        for rec in ipam.endpoints(paths, cfg.id).values():
            if cfg.id not in of(rec["cid"]).networks:
                of(rec["cid"]).networks.append(cfg.id)
    for cid in hostports.holders(paths):
        of(cid).ports = True
    with contextlib.suppress(FileNotFoundError):
        for f in os.listdir(status_dir(paths)):
            if f.endswith(".json"):
                of(f[:-5]).status = True
    known = set(owned)
    with contextlib.suppress(FileNotFoundError):
        known |= set(os.listdir(paths.containers))
    for t in tables:
        short = t[len(cprefix):]
        for cid in sorted(c for c in known if c.startswith(short)) or [short]:
            of(cid).tables.append(t)
    return owned


def claim_by_dir(paths: Paths) -> Claim:
    """Without the core (network tests): a container is gone when its directory is."""
    return lambda cid: contextlib.nullcontext(not os.path.isdir(paths.container_dir(cid)))


def claim_from_alive(alive: Callable[[str], bool]) -> Claim:
    return lambda cid: contextlib.nullcontext(not alive(cid))


def _release(paths: Paths, cid: str, what: Owned, report: dict[str, list[str]]) -> None:
    """Remove what `what` lists for cid (the caller holds the claim that says cid is gone)."""
    if what.netns:
        netns.remove_netns(paths, cid)
        report["netns"].append(cid)
    for t in what.tables:
        nat.delete_table(t)
        report["tables"].append(t)
    if what.veths:
        from nsbox.network import links  # pyroute2: only when there is a leftover veth to delete
        for dev in what.veths:
            links.delete_link(dev)
            report["veths"].append(dev)
    for net_id in what.networks:
        # only this cid's records, re-read under the network's lock
        report["addresses"] += ipam.release_where(paths, net_id, lambda c: c == cid)
    if what.ports:
        hostports.release(paths, cid)
    if what.status:
        fileio.remove(os.path.join(status_dir(paths), cid + ".json"))


def reconcile(paths: Paths, claim: Claim | None = None, mine: str = "") -> dict[str, list[str]]:
    """Remove the network objects of containers that are gone. `mine` is the container the caller is
    starting (it holds its start lock and has no live network yet): whatever it owns is a leftover of an
    earlier, interrupted start of its own."""
    claim = claim or claim_by_dir(paths)
    report: dict[str, list[str]] = {"netns": [], "tables": [], "veths": [], "addresses": []}
    touched: set[str] = set()
    for cid, what in sorted(list_owned(paths).items()):
        with _judged(claim, cid, mine) as gone:
            if gone:
                _release(paths, cid, what, report)
                touched.update(what.networks)
    for net_id in sorted(touched):
        with contextlib.suppress(NotFound):
            hosts.refresh_peers(paths, net_id)
    return report


@contextlib.contextmanager
def _judged(claim: Claim, cid: str, mine: str) -> Iterator[bool]:
    if mine and cid == mine:
        yield True
        return
    with claim(cid) as gone:
        yield gone
