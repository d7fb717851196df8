"""nftables rules (via the `nft` CLI: no pyroute2, one exec per change; teardown = one `delete table`).

Two kinds of tables, both tagged with the state root (fileio.root_tag) so reconcile only sees its own:
  nsbox-<tag>-n<netid12>  per network: masquerade (127/8 -> bridge, hairpin, outbound) and isolation
  nsbox-<tag>-c<cid12>    per container: DNAT of its published ports
Published ports follow the rule matrix measured in landmines §8: PREROUTING DNAT (other hosts and
containers), OUTPUT DNAT (the host itself), 127/8 masquerade + route_localnet on the bridge (localhost),
hairpin on every bridge port + masquerade of DNATed traffic back into the bridge (hairpin).
"""
from __future__ import annotations

import subprocess

from nsbox.runtime.errors import NsboxError
from nsbox.runtime.paths import Paths

from nsbox.network.fileio import root_tag
from nsbox.network.model import NetworkConfig, PortMapping

NFT = "nft"
# packet mark bit: "forwarded out of some nsbox bridge towards another interface". A bridge drops marked
# packets coming from another bridge (docker's DOCKER-ISOLATION), without any table knowing the others.
ISOLATION_MARK = 0x01000000


def prefix(paths: Paths) -> str:
    return f"nsbox-{root_tag(paths)}-"


def network_table(paths: Paths, cfg: NetworkConfig) -> str:
    return f"{prefix(paths)}n{cfg.id[:12]}"


def container_table(paths: Paths, cid: str) -> str:
    return f"{prefix(paths)}c{cid[:12]}"


def render_network(name: str, cfg: NetworkConfig) -> str:
    br, sub, mark = cfg.bridge, cfg.subnet, f"0x{ISOLATION_MARK:08x}"
    post = [f'ip saddr 127.0.0.0/8 oifname "{br}" masquerade',          # localhost -> published port
            f'ip saddr {sub} oifname "{br}" ct status dnat masquerade']  # hairpin / container -> published port
    if cfg.internal:
        fwd = [f'iifname "{br}" oifname != "{br}" drop',
               f'oifname "{br}" iifname != "{br}" drop']
    else:
        post.append(f'ip saddr {sub} oifname != "{br}" masquerade')    # outbound
        fwd = [f'oifname "{br}" iifname != "{br}" ct status dnat accept',
               f'oifname "{br}" iifname != "{br}" meta mark & {mark} == {mark} drop']
    nl = "\n    "
    return f"""table ip {name} {{}}
delete table ip {name}
table ip {name} {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    {nl.join(post)}
  }}
  chain isolation_mark {{
    type filter hook forward priority -10; policy accept;
    iifname "{br}" oifname != "{br}" meta mark set meta mark or {mark}
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    {nl.join(fwd)}
  }}
}}
"""


def render_container(name: str, ip: str, mappings: list[PortMapping]) -> str:
    rules = []
    for m in mappings:
        match = f"ip daddr {m.host_ip}" if m.host_ip else "fib daddr type local"
        rules.append(f"{match} {m.protocol} dport {m.host_port} dnat to {ip}:{m.container_port}")
    nl = "\n    "
    body = nl.join(rules)
    return f"""table ip {name} {{}}
delete table ip {name}
table ip {name} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    {body}
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    {body}
  }}
}}
"""


def apply(ruleset: str) -> None:
    """Load atomically (one transaction: a failure changes nothing)."""
    r = subprocess.run([NFT, "-f", "-"], input=ruleset, capture_output=True, text=True)
    if r.returncode != 0:
        raise NsboxError(f"nft: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}")


def delete_table(name: str) -> None:
    """Idempotent."""
    subprocess.run([NFT, "delete", "table", "ip", name], capture_output=True)


def list_tables(name_prefix: str) -> list[str]:
    r = subprocess.run([NFT, "list", "tables", "ip"], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[2].startswith(name_prefix):
            out.append(parts[2])
    return out
