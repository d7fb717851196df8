"""Links, addresses and routes: the ONLY module that imports pyroute2 (~0.25 s), loaded by the bridge path only.

Teardown never needs this module: the veth pair dies with the netns (netns.remove_netns).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nsbox.runtime import linux

from nsbox.network.model import NetworkConfig
from nsbox.network.subnets import mac_for_ip


def _ignore(code: int, fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except NetlinkError as e:
        if e.code != code:
            raise
        return None


def _sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _alias_of(name: str) -> str:
    try:
        with open(f"/sys/class/net/{name}/ifalias") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def ensure_bridge(cfg: NetworkConfig, alias: str) -> bool:
    """Create and configure the bridge, marked with this root's alias from its first moment (caller
    holds the network lock and has checked that no bridge of that name is someone else's). False when
    a bridge of that name appeared meanwhile: it is then not touched (the caller re-checks its owner).
    A bridge of ours left half-made by a kill -9 (it is set up last) is completed."""
    with IPRoute() as ipr:
        present = os.path.exists(f"/sys/class/net/{cfg.bridge}")
        if present and _alias_of(cfg.bridge) != alias:
            return False
        if not present:
            try:
                # fixed MAC: otherwise the bridge takes its lowest port's MAC and changes it as ports come and go
                ipr.link("add", ifname=cfg.bridge, kind="bridge", address=mac_for_ip(cfg.gateway))
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    return False
                raise
        idx = ipr.link_lookup(ifname=cfg.bridge)[0]
        if not present:  # the kernel ignores IFLA_IFALIAS in a link creation: set it first thing after
            ipr.link("set", index=idx, ifalias=alias)
        _ignore(errno.EEXIST, ipr.addr, "add", index=idx, address=cfg.gateway, prefixlen=cfg.prefixlen)
        # 127.0.0.1 -> published port: the DNATed packet leaves with a loopback source (landmines §8.2)
        _sysctl(f"/proc/sys/net/ipv4/conf/{cfg.bridge}/route_localnet", "1")
        ipr.link("set", index=idx, state="up")
    return True


def mark(name: str, alias: str) -> None:
    """Claim a bridge an older nsbox made for this network (it carries the network's gateway)."""
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], ifalias=alias)


def delete_link(name: str) -> None:
    """Idempotent."""
    if not os.path.exists(f"/sys/class/net/{name}"):
        return
    with IPRoute() as ipr:
        _ignore(errno.ENODEV, ipr.link, "del", ifname=name)


@dataclass
class Endpoint:
    ifname: str          # inside the netns
    host_ifname: str
    mac: str


def _ns_socket(netns_fd: int) -> IPRoute:
    """A netlink socket inside the netns without pyroute2's fork: switch this thread, open, switch back."""
    sc = linux.Syscalls()
    me = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(netns_fd, linux.CLONE_NEWNET)
        try:
            return IPRoute()
        finally:
            sc.setns(me, linux.CLONE_NEWNET)
    finally:
        os.close(me)


def add_endpoint(cid: str, netns_path: str, cfg: NetworkConfig, ip: str, mac: str, alias: str) -> Endpoint:
    """veth pair: host end on the bridge (hairpin on), peer created directly in the netns as eth<N>."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ns_socket(fd) as ns:
            present = {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
            slot = next(i for i in range(16) if f"eth{i}" not in present)
            ifname, host = f"eth{slot}", f"nsv{cid[:10]}{slot:x}"   # <= 15 chars
            with IPRoute() as ipr:
                ipr.link("add", ifname=host, kind="veth", peer={"ifname": ifname, "net_ns_fd": fd, "address": mac})
                try:
                    hidx = ipr.link_lookup(ifname=host)[0]
                    br = ipr.link_lookup(ifname=cfg.bridge)[0]
                    # the alias here: the kernel ignores IFLA_IFALIAS when it creates a link
                    ipr.link("set", index=hidx, master=br, state="up", ifalias=alias)
                    ipr.brport("set", index=hidx, mode=1)  # hairpin: a container reaching its own published port
                except BaseException:
                    _ignore(errno.ENODEV, ipr.link, "del", ifname=host)
                    raise
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=idx, address=ip, prefixlen=cfg.prefixlen)
            ns.link("set", index=idx, state="up")
            if not cfg.internal:  # internal networks get no route out; the first other network gives it
                _ignore(errno.EEXIST, ns.route, "add", dst="default", gateway=cfg.gateway)
            return Endpoint(ifname, host, mac)
    finally:
        os.close(fd)


def remove_endpoint(netns_path: str, ifname: str) -> None:
    """Delete eth<N> inside the netns (disconnect); its host peer goes with it."""
    if not os.path.exists(netns_path):
        return
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ns_socket(fd) as ns:
            _ignore(errno.ENODEV, ns.link, "del", ifname=ifname)
    finally:
        os.close(fd)
