"""Name resolution for user-defined networks through each container's /etc/hosts.

Why hosts files and not an embedded DNS server: nothing has to stay running (a DNS server would need a
daemon per network or per container, which nsbox, daemonless like podman, does not have, and it would have
to survive kill -9 and be reconciled), any libc and busybox resolve through /etc/hosts, and updates are a
plain file write under the IPAM lock. The cost: names appear on connect/disconnect of peers only because
refresh_peers() rewrites every peer's file, and there is no round-robin or external forwarding.

The file is bind-mounted into the running container, so it is rewritten IN PLACE (O_TRUNC on the same
inode), never renamed. Everything above MARKER belongs to the core (localhost, own hostname, --add-host).
"""
from __future__ import annotations

import fcntl
import os

from nsbox.runtime.paths import Paths

from nsbox.network import config, ipam

MARKER = "# nsbox: peers on user-defined networks (kept current by nsbox)"


def hosts_entries(paths: Paths, cid: str) -> list[tuple[str, list[str]]]:
    """Peer lines for cid's /etc/hosts: every other container on each user-defined network cid is on,
    by name, aliases and short id. The default bridge resolves by IP only, like docker."""
    user_nets = {c.id for c in config.list_networks(paths) if not c.default}
    out: list[tuple[str, list[str]]] = []
    for net_id in sorted(ipam.networks_of(paths, cid)):
        if net_id not in user_nets:
            continue
        for ip, rec in sorted(ipam.endpoints(paths, net_id).items()):
            if rec["cid"] == cid:
                continue
            names = [n for n in [rec.get("name", ""), *rec.get("aliases", []), rec["cid"][:12]] if n]
            out.append((ip, list(dict.fromkeys(names))))
    return out


def render(base: str, entries: list[tuple[str, list[str]]]) -> str:
    base = base.split(MARKER, 1)[0]
    if base and not base.endswith("\n"):
        base += "\n"
    return base + MARKER + "\n" + "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in entries)


def write_hosts(path: str, base: str, entries: list[tuple[str, list[str]]]) -> None:
    """Write base + peer section into path in place (same inode: it may be bind-mounted)."""
    data = render(base, entries)
    with open(path, "r+" if os.path.exists(path) else "w") as f:
        f.seek(0)
        f.write(data)
        f.truncate()


def refresh_container(paths: Paths, cid: str) -> None:
    """Recompute and rewrite cid's peer section. The flock on the file spans read-compute-write, and every
    IPAM change is followed by a refresh, so the last writer of each file always writes current state."""
    path = os.path.join(paths.container_dir(cid), "hosts")
    try:
        f = open(path, "r+")
    except FileNotFoundError:
        return  # the core writes it (with hosts_entries) when it creates the container
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        data = render(f.read(), hosts_entries(paths, cid))
        f.seek(0)
        f.write(data)
        f.truncate()


def refresh_peers(paths: Paths, network_name: str) -> None:
    """Rewrite the hosts file of every container attached to the network."""
    cfg = config.get_network(paths, network_name)
    if cfg.default:
        return
    for rec in ipam.endpoints(paths, cfg.id).values():
        refresh_container(paths, rec["cid"])
