"""Adapters for the core runtime: docker-shaped container config -> NetworkRequest, and back.

Keys read from the container config (docker's shape; all optional):
  Name                                             "/name" (resolvable by peers on user networks)
  Config.Hostname, Config.ExposedPorts {"80/tcp": {}}, Config.MacAddress
  HostConfig.NetworkMode                            "bridge" | <network name or id>
  HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080" | "8000-8010" | ""}]}
  HostConfig.PublishAllPorts, HostConfig.Dns, HostConfig.ExtraHosts
  NetworkingConfig.EndpointsConfig {<net>: {"Aliases": [...], "IPAMConfig": {"IPv4Address": ip}, "MacAddress": ""}}
"""
from __future__ import annotations

from nsbox.runtime.paths import Paths

from nsbox.network import api, netns
from nsbox.network.model import EndpointRequest, NetworkRequest, NetworkStatus, PortMapping
from nsbox.network.ports import parse_publish


def port_bindings(specs: list[str]) -> dict[str, list[dict[str, str]]]:
    """`-p` specs -> docker's HostConfig.PortBindings (what `inspect` shows)."""
    out: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        for m in parse_publish(spec):
            hp = "" if not m.host_port else (f"{m.host_port}-{m.host_port_end}" if m.host_port_end else str(m.host_port))
            out.setdefault(m.key(), []).append({"HostIp": m.host_ip, "HostPort": hp})
    return out


def _mappings(bindings: dict) -> list[PortMapping]:
    out = []
    for key, lst in (bindings or {}).items():
        port, _, proto = key.partition("/")
        for b in lst or [{}]:
            spec = f"{b.get('HostIp') or ''}:{b.get('HostPort') or ''}:{port}/{proto or 'tcp'}"
            out += parse_publish(spec)
    return out


def request_from_config(cfg: dict) -> NetworkRequest:
    hc, c = cfg.get("HostConfig", {}), cfg.get("Config", {})
    mode = hc.get("NetworkMode") or "bridge"
    eps = (cfg.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    names = [mode] + [n for n in eps if n != mode]
    networks = []
    for n in names:
        e = eps.get(n) or {}
        networks.append(EndpointRequest(n, ((e.get("IPAMConfig") or {}).get("IPv4Address")) or None,
                                        list(e.get("Aliases") or []),
                                        e.get("MacAddress") or (c.get("MacAddress") if n == mode else None) or None))
    return NetworkRequest(networks=networks, ports=_mappings(hc.get("PortBindings")),
                          publish_all=bool(hc.get("PublishAllPorts")), exposed=list(c.get("ExposedPorts") or {}),
                          name=(cfg.get("Name") or "").lstrip("/"), hostname=c.get("Hostname", ""),
                          dns=list(hc.get("Dns") or []), add_hosts=list(hc.get("ExtraHosts") or []))


def setup_container(paths: Paths, cid: str, cfg: dict) -> tuple[str, dict]:
    """Make the netns file and attach it; returns (netns path, NetworkStatus as a dict). All or nothing."""
    req = request_from_config(cfg)
    path = netns.create_netns(paths, cid)
    try:
        st = api.attach(paths, cid, path, req)
    except BaseException:
        netns.remove_netns(paths, cid)
        raise
    return path, st.to_dict()


def teardown(paths: Paths, cid: str, network: dict | None = None) -> None:
    """Idempotent and pyroute2-free: rules, host ports, addresses, then the netns (and with it the veths)."""
    api.detach(paths, cid, NetworkStatus.from_dict(network) if network else None)
    netns.remove_netns(paths, cid)
