"""The dataclasses other layers exchange with network/ (no kernel access, no pyroute2)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PortMapping:
    """One `-p` binding. host_port 0 = any free port; host_port_end > host_port = any free port in the range."""
    container_port: int
    protocol: str = "tcp"           # "tcp" | "udp"
    host_ip: str = ""               # "" = every host address
    host_port: int = 0
    host_port_end: int = 0

    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@dataclass
class EndpointRequest:
    """One network the container joins."""
    network: str                    # network name or id ("bridge" = the default network)
    ip: str | None = None           # --ip (static request)
    aliases: list[str] = field(default_factory=list)   # --network-alias (user-defined networks only)
    mac: str | None = None          # --mac-address


@dataclass
class NetworkRequest:
    """What the user asked for, for the bridge modes (host/none/container: are handled by the core)."""
    networks: list[EndpointRequest] = field(default_factory=lambda: [EndpointRequest("bridge")])
    ports: list[PortMapping] = field(default_factory=list)       # -p
    publish_all: bool = False                                     # -P
    exposed: list[str] = field(default_factory=list)             # "80/tcp" from EXPOSE/--expose (for -P)
    name: str = ""                  # container name (resolvable by peers on user-defined networks)
    hostname: str = ""
    dns: list[str] = field(default_factory=list)                  # written by the core into resolv.conf
    add_hosts: list[str] = field(default_factory=list)            # "host:ip", written by the core into /etc/hosts


@dataclass
class EndpointStatus:
    """docker inspect NetworkSettings.Networks[<name>]"""
    NetworkID: str
    EndpointID: str
    Gateway: str
    IPAddress: str
    IPPrefixLen: int
    MacAddress: str
    Aliases: list[str]
    IfName: str = "eth0"            # inside the container
    HostIfName: str = ""            # host end of the veth
    DNSNames: list[str] = field(default_factory=list)


@dataclass
class NetworkStatus:
    """What attach() did; shaped like docker's NetworkSettings (core copies it into inspect)."""
    IPAddress: str = ""
    Gateway: str = ""
    IPPrefixLen: int = 0
    MacAddress: str = ""
    Ports: dict[str, list[dict[str, str]] | None] = field(default_factory=dict)   # "80/tcp": [{"HostIp","HostPort"}]
    Networks: dict[str, EndpointStatus] = field(default_factory=dict)
    SandboxKey: str = ""            # the netns file
    NatTable: str = ""              # nft table holding this container's DNAT rules ("" = none)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkStatus":
        nets = {k: EndpointStatus(**v) for k, v in d.get("Networks", {}).items()}
        return cls(**{**d, "Networks": nets})


@dataclass
class NetworkConfig:
    """A network as stored in paths.networks/<id>.json (docker `network inspect` fields derive from it)."""
    name: str
    id: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""
    driver: str = "bridge"
    default: bool = False           # the built-in `bridge` network: IP-only resolution, cannot be removed

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        return cls(**d)
