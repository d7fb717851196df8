"""Network configs on disk: paths.networks/configs/<id>.json, plus the default `bridge` network.

The default network's bridge name and subnet come, in this order, from
  1. paths.networks/settings.json  {"bridge": "nsbox0", "subnet": "172.17.0.0/16"}  (per state root), or
  2. env NSBOX_BRIDGE / NSBOX_SUBNET, or
  3. a bridge named from the root (nsbox0 for the default root /var/lib/nsbox, nsbox-<root tag> for any
     other, so two roots never share one) and the first of docker's pools (172.17.0.0/16, ...) that
     clashes with no host route.
They are read once, when the default network is first materialized; after that its config file is the truth,
except that a default network still unused moves to a bridge of its own when another root owns its bridge
(a second root made by an older nsbox recorded the first root's nsbox0).
"""
from __future__ import annotations

import os
import re
import secrets
import time

from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.paths import DEFAULT_ROOT, Paths

from nsbox.network import fileio, subnets
from nsbox.network.model import NetworkConfig

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "nsbox0"
MODES = ("host", "none")                       # names that are modes, not networks
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def configs_dir(paths: Paths) -> str:
    return os.path.join(paths.networks, "configs")


def lock_path(paths: Paths) -> str:
    return os.path.join(paths.networks, "configs.lock")


def settings_path(paths: Paths) -> str:
    return os.path.join(paths.networks, "settings.json")


def write_settings(paths: Paths, bridge: str, subnet: str) -> None:
    """Pin the default network's bridge and subnet for this state root (tests use a unique pair)."""
    fileio.write_json(settings_path(paths), {"bridge": bridge, "subnet": subnet})


def _load_all(paths: Paths) -> list[NetworkConfig]:
    out = []
    try:
        names = sorted(os.listdir(configs_dir(paths)))
    except FileNotFoundError:
        return out
    for n in names:
        if n.endswith(".json"):
            d = fileio.read_json(os.path.join(configs_dir(paths), n))
            if d:
                out.append(NetworkConfig.from_dict(d))
    return out


def _save(paths: Paths, cfg: NetworkConfig) -> None:
    fileio.write_json(os.path.join(configs_dir(paths), cfg.id + ".json"), cfg.to_dict())


def _taken_subnets(paths: Paths) -> list[subnets.Net]:
    return subnets.host_routes() + [subnets.parse_subnet(c.subnet) for c in _load_all(paths)]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def default_bridge(paths: Paths) -> str:
    """The default network's bridge when nothing pins one: docker users expect nsbox0 for the default
    root; any other root gets a name of its own (<= 15 characters)."""
    return DEFAULT_BRIDGE if paths.root == DEFAULT_ROOT else f"nsbox-{paths.tag}"


def _configured_bridge(paths: Paths) -> str:
    s = fileio.read_json(settings_path(paths), {}) or {}
    return s.get("bridge") or os.environ.get("NSBOX_BRIDGE") or default_bridge(paths)


def _own_bridge(paths: Paths, c: NetworkConfig) -> NetworkConfig:
    """Move a default network that nothing uses yet off a bridge that another root owns."""
    from nsbox.network import bridges, ipam
    want = _configured_bridge(paths)
    if want == c.bridge or bridges.owner(paths, c) != bridges.FOREIGN or ipam.endpoints(paths, c.id):
        return c
    c.bridge = want
    _save(paths, c)
    return c


def _ensure_default_locked(paths: Paths) -> NetworkConfig:
    for c in _load_all(paths):
        if c.default:
            return _own_bridge(paths, c)
    bridge = _configured_bridge(paths)
    s = fileio.read_json(settings_path(paths), {}) or {}
    subnet_text = s.get("subnet") or os.environ.get("NSBOX_SUBNET")
    net = subnets.parse_subnet(subnet_text) if subnet_text else subnets.pick_free_subnet(_taken_subnets(paths))
    cfg = NetworkConfig(name=DEFAULT_NETWORK, id=secrets.token_hex(32), bridge=bridge, subnet=str(net),
                        gateway=str(subnets.parse_gateway(None, net)), created=_now(), default=True)
    _save(paths, cfg)
    return cfg


def ensure_default(paths: Paths) -> NetworkConfig:
    with fileio.locked(lock_path(paths)):
        return _ensure_default_locked(paths)


def existing_networks(paths: Paths) -> list[NetworkConfig]:
    """The networks on disk, without materializing the default one (for reconcile on any start-up)."""
    return _load_all(paths)


def network_mode(mode: str) -> tuple[str, str]:
    """--network value -> (kind, argument): ("none"|"host", ""), ("container", ref) or ("bridge", network name)."""
    mode = (mode or DEFAULT_NETWORK).strip()
    if mode in MODES:
        return mode, ""
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        if not ref:
            raise InvalidArgument("--network container: needs a container name or id")
        return "container", ref
    if mode == "default":
        return "bridge", DEFAULT_NETWORK
    return "bridge", mode


def list_networks(paths: Paths) -> list[NetworkConfig]:
    ensure_default(paths)
    return sorted(_load_all(paths), key=lambda c: (not c.default, c.name))


def get_network(paths: Paths, name_or_id: str) -> NetworkConfig:
    if name_or_id == DEFAULT_NETWORK:
        return ensure_default(paths)
    nets = _load_all(paths)
    for c in nets:
        if c.name == name_or_id or c.id == name_or_id:
            return c
    matches = [c for c in nets if len(name_or_id) >= 3 and c.id.startswith(name_or_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgument(f"network id prefix {name_or_id!r} is ambiguous")
    raise NotFound(f"network {name_or_id} not found")


def create_network(paths: Paths, name: str, subnet: str | None = None, gateway: str | None = None,
                   internal: bool = False, labels: dict[str, str] | None = None) -> NetworkConfig:
    if not _NAME_RE.match(name):
        raise InvalidArgument(f"invalid network name {name!r}")
    if name in MODES or name == DEFAULT_NETWORK:
        raise Conflict(f"network name {name} is reserved")
    net = subnets.parse_subnet(subnet) if subnet else None
    if gateway and net is None:
        raise InvalidArgument("--gateway needs --subnet")
    with fileio.locked(lock_path(paths)):
        _ensure_default_locked(paths)
        existing = _load_all(paths)
        if any(c.name == name for c in existing):
            raise Conflict(f"network with name {name} already exists")
        if net is None:
            net = subnets.pick_free_subnet(_taken_subnets(paths))
        else:
            for c in existing:
                if net.overlaps(subnets.parse_subnet(c.subnet)):
                    raise Conflict(f"subnet {net} overlaps with network {c.name} ({c.subnet})")
        gw = subnets.parse_gateway(gateway, net)
        nid = secrets.token_hex(32)
        cfg = NetworkConfig(name=name, id=nid, bridge=f"nsbr-{nid[:10]}", subnet=str(net), gateway=str(gw),
                            internal=internal, labels=dict(labels or {}), created=_now())
        _save(paths, cfg)
        return cfg


def exists(paths: Paths, net_id: str) -> bool:
    return os.path.exists(os.path.join(configs_dir(paths), net_id + ".json"))


def delete_config(paths: Paths, cfg: NetworkConfig) -> None:
    with fileio.locked(lock_path(paths)):
        fileio.remove(os.path.join(configs_dir(paths), cfg.id + ".json"))
