"""attach/detach/connect/disconnect/reconcile: the network layer's public verbs.

This module imports no pyroute2; `links` (the only pyroute2 user) is imported inside the functions that
create links. Teardown (detach, reconcile) is nft + file operations, plus link deletion only for
leftovers found in /sys/class/net.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable

from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.paths import Paths

from nsbox.network import bridges, config, fileio, hostports, hosts, ipam, nat, netns
from nsbox.network.model import (EndpointRequest, EndpointStatus, NetworkConfig, NetworkRequest,
                                 NetworkStatus, PortMapping)
from nsbox.network.ports import expand_publish_all
from nsbox.network.subnets import mac_for_ip


# ---------------------------------------------------------------- status persistence
def _status_file(paths: Paths, cid: str) -> str:
    return os.path.join(paths.networks, "endpoints", cid + ".json")


def load_status(paths: Paths, cid: str) -> NetworkStatus | None:
    d = fileio.read_json(_status_file(paths, cid))
    return NetworkStatus.from_dict(d) if d else None


def _save_status(paths: Paths, cid: str, st: NetworkStatus) -> None:
    fileio.write_json(_status_file(paths, cid), st.to_dict())


def _veth_alias(paths: Paths, cid: str) -> str:
    """ifalias of a host veth end: lets reconcile find leftovers of THIS root without any registry."""
    return f"nsbox:{fileio.root_tag(paths)}:{cid}"


def _enable_forwarding() -> None:
    """Host-global, like docker: container -> published port and outbound traffic need IP forwarding.
    It is left on (other users may rely on it once on); isolation is done by the network tables."""
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")


def _ensure_network_objects(paths: Paths, cfg: NetworkConfig) -> None:
    """The network's table and bridge, made once; never another root's bridge (network/bridges.py)."""
    if bridges.owner(paths, cfg) == bridges.OURS and bridges.is_up(cfg.bridge):
        return
    with fileio.locked(ipam.net_lock(paths, cfg.id)):
        who = bridges.owner(paths, cfg)
        if who == bridges.FOREIGN:
            raise bridges.refusal(paths, cfg)
        if who == bridges.ABSENT:
            bridges.check_subnet_unrouted(cfg)
        from nsbox.network import links
        if who == bridges.LEGACY:
            links.mark(cfg.bridge, bridges.alias(paths, cfg))
        elif who == bridges.OURS and bridges.is_up(cfg.bridge):
            return
        # table first: it names the bridge only by string, so a kill -9 between the two steps
        # leaves a state the next attach repairs (bridge missing or not up -> both redone)
        table = nat.network_table(paths, cfg)
        nat.apply(nat.render_network(table, cfg))
        if not links.ensure_bridge(cfg, bridges.alias(paths, cfg)) and bridges.owner(paths, cfg) != bridges.OURS:
            nat.delete_table(table)   # someone else's bridge appeared under that name meanwhile
            raise bridges.refusal(paths, cfg)


def _check_request(cfgs: list[NetworkConfig], req: NetworkRequest) -> None:
    if len({c.id for c in cfgs}) != len(cfgs):
        raise InvalidArgument("a container can join a network only once")
    for c, e in zip(cfgs, req.networks):
        if c.default and e.aliases:
            raise InvalidArgument("network-scoped aliases are supported only for user-defined networks")
        if c.default and e.ip:
            raise InvalidArgument("user specified IP address is supported only for user-defined networks")


def _join(paths: Paths, cid: str, netns_path: str, cfg: NetworkConfig, e: EndpointRequest,
          name: str, undo: list[Callable[[], None]]) -> EndpointStatus:
    ip = ipam.allocate(paths, cfg, cid, e.ip, name, e.aliases)
    undo.append(lambda: ipam.release(paths, cfg.id, cid))
    _ensure_network_objects(paths, cfg)
    if not cfg.internal:
        _enable_forwarding()
    from nsbox.network import links
    ep = links.add_endpoint(cid, netns_path, cfg, ip, e.mac or mac_for_ip(ip), _veth_alias(paths, cid))
    undo.append(lambda: links.remove_endpoint(netns_path, ep.ifname))
    dns = [] if cfg.default else [n for n in [name, *e.aliases, cid[:12]] if n]
    return EndpointStatus(NetworkID=cfg.id, EndpointID=secrets.token_hex(32), Gateway=cfg.gateway,
                          IPAddress=ip, IPPrefixLen=cfg.prefixlen, MacAddress=ep.mac,
                          Aliases=list(e.aliases), IfName=ep.ifname, HostIfName=ep.host_ifname,
                          DNSNames=list(dict.fromkeys(dns)))


def _ports_view(bound: list[PortMapping], exposed: list[str]) -> dict[str, list[dict[str, str]] | None]:
    from nsbox.network.ports import parse_exposed
    view: dict[str, list[dict[str, str]] | None] = {}
    for spec in exposed:
        for port, proto in parse_exposed(spec):
            view.setdefault(f"{port}/{proto}", None)
    for m in bound:
        lst = view.get(m.key()) or []
        lst.append({"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)})
        view[m.key()] = lst
    return view


def _rollback(undo: list[Callable[[], None]]) -> None:
    for fn in reversed(undo):
        with contextlib.suppress(Exception):
            fn()


# ---------------------------------------------------------------- public verbs
def attach(paths: Paths, cid: str, netns_path: str, req: NetworkRequest) -> NetworkStatus:
    """Join the netns to req.networks and publish req.ports; all or nothing (a failure undoes every step)."""
    reqs = req.networks or [EndpointRequest(config.DEFAULT_NETWORK)]
    cfgs = [config.get_network(paths, e.network) for e in reqs]
    _check_request(cfgs, NetworkRequest(networks=reqs))
    wanted = expand_publish_all(req.ports, req.exposed) if req.publish_all else list(req.ports)
    undo: list[Callable[[], None]] = []
    try:
        bound = hostports.reserve(paths, cid, wanted) if wanted else []   # first: a conflict makes nothing
        undo.append(lambda: hostports.release(paths, cid))
        st = NetworkStatus(SandboxKey=netns_path)
        for cfg, e in zip(cfgs, reqs):
            st.Networks[cfg.name] = _join(paths, cid, netns_path, cfg, e, req.name, undo)
        first = st.Networks[cfgs[0].name]
        st.IPAddress, st.Gateway, st.IPPrefixLen, st.MacAddress = (
            first.IPAddress, first.Gateway, first.IPPrefixLen, first.MacAddress)
        if bound:
            table = nat.container_table(paths, cid)
            undo.append(lambda: nat.delete_table(table))
            nat.apply(nat.render_container(table, first.IPAddress, bound))
            st.NatTable = table
        st.Ports = _ports_view(bound, req.exposed)
        _save_status(paths, cid, st)
    except BaseException:
        _rollback(undo)
        raise
    for cfg in cfgs:
        hosts.refresh_peers(paths, cfg.name)
    return st


def detach(paths: Paths, cid: str, status: NetworkStatus | None = None) -> None:
    """Idempotent and pyroute2-free: drop the DNAT table, host ports, addresses and the status record.
    The veth pair dies with the netns (netns.remove_netns, done by the core)."""
    status = status or load_status(paths, cid)
    if status is None or status.NatTable:
        nat.delete_table(nat.container_table(paths, cid))
    hostports.release(paths, cid)
    nets = ipam.networks_of(paths, cid)
    for net_id in nets:
        ipam.release(paths, net_id, cid)
    fileio.remove(_status_file(paths, cid))
    _refresh_ids(paths, nets)


def _refresh_ids(paths: Paths, net_ids: list[str]) -> None:
    for net_id in net_ids:
        with contextlib.suppress(NotFound):
            hosts.refresh_peers(paths, net_id)


def connect(paths: Paths, cid: str, netns_path: str, network: str, ip: str | None = None,
            aliases: list[str] | None = None, name: str = "") -> EndpointStatus:
    """`network connect` on a running container (given its id and netns file)."""
    cfg = config.get_network(paths, network)
    e = EndpointRequest(cfg.name, ip, list(aliases or []))
    _check_request([cfg], NetworkRequest(networks=[e]))
    st = load_status(paths, cid) or NetworkStatus(SandboxKey=netns_path)
    if cfg.name in st.Networks:
        raise Conflict(f"container {cid[:12]} is already connected to network {cfg.name}")
    undo: list[Callable[[], None]] = []
    try:
        ep = _join(paths, cid, netns_path, cfg, e, name, undo)
        st.Networks[cfg.name] = ep
        if not st.IPAddress:
            st.IPAddress, st.Gateway, st.IPPrefixLen, st.MacAddress = ep.IPAddress, ep.Gateway, ep.IPPrefixLen, ep.MacAddress
        _save_status(paths, cid, st)
    except BaseException:
        _rollback(undo)
        raise
    hosts.refresh_peers(paths, cfg.name)
    return ep


def disconnect(paths: Paths, cid: str, netns_path: str, network: str) -> None:
    cfg = config.get_network(paths, network)
    st = load_status(paths, cid)
    if st is None or cfg.name not in st.Networks:
        raise NotFound(f"container {cid[:12]} is not connected to network {cfg.name}")
    ep = st.Networks.pop(cfg.name)
    from nsbox.network import links
    links.remove_endpoint(netns_path, ep.IfName)
    ipam.release(paths, cfg.id, cid)
    if st.IPAddress == ep.IPAddress:
        st.IPAddress = st.Gateway = st.MacAddress = ""
        st.IPPrefixLen = 0
    _save_status(paths, cid, st)
    hosts.refresh_peers(paths, cfg.name)
    hosts.refresh_container(paths, cid)


# ---------------------------------------------------------------- networks
def network_endpoints(paths: Paths, cfg: NetworkConfig) -> dict[str, dict]:
    return ipam.endpoints(paths, cfg.id)


def destroy_network_objects(paths: Paths, cfg: NetworkConfig) -> None:
    """Bridge + network nft table (idempotent). A bridge of that name that is not ours stays."""
    nat.delete_table(nat.network_table(paths, cfg))
    if bridges.owner(paths, cfg) in (bridges.OURS, bridges.LEGACY):
        from nsbox.network import links
        links.delete_link(cfg.bridge)


def remove_network(paths: Paths, name: str, force_default: bool = False) -> NetworkConfig:
    cfg = config.get_network(paths, name)
    if cfg.default and not force_default:
        raise Conflict(f"{cfg.name} is a pre-defined network and cannot be removed")
    with fileio.locked(ipam.net_lock(paths, cfg.id)):
        if ipam.endpoints(paths, cfg.id):
            raise Conflict(f"network {cfg.name} has active endpoints")
        # the config goes first and under the lock: an attach that looked the network up before
        # finds it gone once it has the lock (ipam.allocate), instead of re-making its bridge
        config.delete_config(paths, cfg)
        destroy_network_objects(paths, cfg)
        ipam.forget_network(paths, cfg.id)
    return cfg


def prune_networks(paths: Paths, keep: Callable[[NetworkConfig], bool] = lambda c: False) -> list[str]:
    removed = []
    for cfg in config.list_networks(paths):
        if cfg.default or keep(cfg) or ipam.endpoints(paths, cfg.id):
            continue
        with contextlib.suppress(Conflict, NotFound):
            removed.append(remove_network(paths, cfg.id).name)
    return removed


# ---------------------------------------------------------------- reconciliation
def reconcile(paths: Paths, alive: Callable[[str], bool] | None = None, *, claim=None,
              mine: str = "") -> dict[str, list[str]]:
    """Remove what a kill -9 may have left: netns files, nft tables, veths, host ports and addresses of
    containers that are gone (see network/reclaim.py for the order that keeps a starting container's).
    `claim(cid)` (the core's: under the container's start lock) or else `alive(cid)` judges each owner;
    the default is "its container dir exists"."""
    from nsbox.network import reclaim as rc
    if claim is None and alive is not None:
        claim = rc.claim_from_alive(alive)
    return rc.reconcile(paths, claim, mine)


def purge(paths: Paths) -> None:
    """Remove every kernel object and record of this state root (tests, `system reset`)."""
    reconcile(paths, alive=lambda cid: False)
    for cfg in config.existing_networks(paths):
        destroy_network_objects(paths, cfg)
    for t in nat.list_tables(nat.prefix(paths)):
        nat.delete_table(t)
    netns.release_netns_dir(paths)
