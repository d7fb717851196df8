"""`Resources`: OCI `linux.resources`-shaped limits, JSON round-trippable (stored in the container config)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class MemoryResources:
    limit: int | None = None          # bytes; -1 = unlimited
    reservation: int | None = None    # soft limit (v1 soft_limit_in_bytes, v2 memory.low)
    swap: int | None = None           # memory+swap total like OCI/docker; -1 = unlimited swap
    disable_oom_killer: bool | None = None
    swappiness: int | None = None
    oom_group: bool | None = None     # nsbox extension: v2 memory.oom.group (kill the whole cgroup on OOM)


@dataclass
class CpuResources:
    shares: int | None = None
    quota: int | None = None          # microseconds per period; -1 = unlimited
    period: int | None = None
    cpus: str | None = None           # cpuset list "0-1,3"
    mems: str | None = None


@dataclass
class PidsResources:
    limit: int | None = None          # <= 0 = unlimited


@dataclass
class WeightDevice:
    major: int
    minor: int
    weight: int


@dataclass
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@dataclass
class BlockIOResources:
    weight: int | None = None
    weight_device: list[WeightDevice] = field(default_factory=list)
    throttle_read_bps_device: list[ThrottleDevice] = field(default_factory=list)
    throttle_write_bps_device: list[ThrottleDevice] = field(default_factory=list)
    throttle_read_iops_device: list[ThrottleDevice] = field(default_factory=list)
    throttle_write_iops_device: list[ThrottleDevice] = field(default_factory=list)

    def throttles(self) -> dict[str, list[ThrottleDevice]]:
        """v1 file suffix -> list (the v2 io.max key is derived from the same names)."""
        return {
            "read_bps_device": self.throttle_read_bps_device,
            "write_bps_device": self.throttle_write_bps_device,
            "read_iops_device": self.throttle_read_iops_device,
            "write_iops_device": self.throttle_write_iops_device,
        }


@dataclass
class DeviceRule:
    allow: bool
    type: str = "a"                   # a (all), c, b
    major: int | None = None          # None = wildcard *
    minor: int | None = None
    access: str = "rwm"

    def v1_line(self) -> str:
        """The devices.allow/deny line: 'c 1:3 rwm'; 'a' alone for all devices."""
        if self.type == "a":
            return "a"
        maj = "*" if self.major is None else str(self.major)
        mnr = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {maj}:{mnr} {self.access}"


def default_device_rules() -> list[DeviceRule]:
    """Docker's allowlist minus block mknod: deny everything, then the standard char devices."""
    c = lambda maj, mnr, acc="rwm": DeviceRule(True, "c", maj, mnr, acc)  # noqa: E731
    return [
        DeviceRule(False, "a", None, None, "rwm"),
        c(None, None, "m"),   # mknod of any char device (docker allows it; opening still needs a rule)
        c(1, 3), c(1, 5), c(1, 7), c(1, 8), c(1, 9),   # null zero full random urandom
        c(5, 0), c(5, 1), c(5, 2),                      # tty console ptmx
        c(136, None),                                   # /dev/pts/*
    ]


_CAMEL = {
    "disable_oom_killer": "disableOOMKiller", "oom_group": "oomGroup",
    "weight_device": "weightDevice",
    "throttle_read_bps_device": "throttleReadBpsDevice",
    "throttle_write_bps_device": "throttleWriteBpsDevice",
    "throttle_read_iops_device": "throttleReadIOPSDevice",
    "throttle_write_iops_device": "throttleWriteIOPSDevice",
}
_SNAKE = {v: k for k, v in _CAMEL.items()}


def _plain_to_dict(obj: Any) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None or v == []:
            continue
        if isinstance(v, list):
            v = [{g.name: getattr(x, g.name) for g in fields(x)} for x in v]
        out[_CAMEL.get(f.name, f.name)] = v
    return out


def _plain_from_dict(cls: type, d: dict | None, item_types: dict[str, type] | None = None) -> Any:
    d = d or {}
    names = {f.name for f in fields(cls)}
    kw = {}
    for k, v in d.items():
        name = _SNAKE.get(k, k)
        if name not in names:
            raise ValueError(f"unknown resources key {k!r} for {cls.__name__}")
        if item_types and name in item_types:
            v = [item_types[name](**x) for x in v]
        kw[name] = v
    return cls(**kw)


@dataclass
class Resources:
    memory: MemoryResources = field(default_factory=MemoryResources)
    cpu: CpuResources = field(default_factory=CpuResources)
    pids: PidsResources = field(default_factory=PidsResources)
    block_io: BlockIOResources = field(default_factory=BlockIOResources)
    # None = leave the devices cgroup alone (privileged); default = docker's allowlist
    devices: list[DeviceRule] | None = field(default_factory=default_device_rules)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "memory": _plain_to_dict(self.memory),
            "cpu": _plain_to_dict(self.cpu),
            "pids": _plain_to_dict(self.pids),
            "blockIO": _plain_to_dict(self.block_io),
            "devices": None if self.devices is None else [
                {"allow": r.allow, "type": r.type, "major": r.major, "minor": r.minor, "access": r.access}
                for r in self.devices],
        }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Resources":
        wd = {"weight_device": WeightDevice}
        wd.update({k: ThrottleDevice for k in (
            "throttle_read_bps_device", "throttle_write_bps_device",
            "throttle_read_iops_device", "throttle_write_iops_device")})
        devs = d.get("devices", "default")
        return cls(
            memory=_plain_from_dict(MemoryResources, d.get("memory")),
            cpu=_plain_from_dict(CpuResources, d.get("cpu")),
            pids=_plain_from_dict(PidsResources, d.get("pids")),
            block_io=_plain_from_dict(BlockIOResources, d.get("blockIO"), wd),
            devices=default_device_rules() if devs == "default" else (
                None if devs is None else [DeviceRule(**r) for r in devs]),
        )


# ---- conversions shared by the drivers (pure, unit-tested) ----

def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (the runc/crun formula)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio weight [10, 1000] -> io.weight [1, 10000] (runc's conversion)."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int | None, limit: int | None) -> str | None:
    """OCI memory.swap (memory+swap total) -> memory.swap.max (swap alone). None = don't write."""
    if swap is None or swap == 0:
        if limit == -1:
            return "max"  # unlimited memory and no explicit swap: unlimited both, like v1
        return None
    if swap == -1:
        return "max"
    if limit is None or limit <= 0:
        raise ValueError("unable to set swap limit without memory limit")
    if swap < limit:
        raise ValueError("memory+swap limit should be >= memory limit")
    return str(swap - limit)


def cpu_max_value(quota: int | None, period: int | None) -> str | None:
    """v2 cpu.max 'QUOTA PERIOD' ('max' for unlimited). None = don't write."""
    if quota is None and period is None:
        return None
    q = "max" if quota is None or quota < 0 else str(quota)
    return q if period is None else f"{q} {period}"


def v2_max(v: int | None) -> str | None:
    if v is None:
        return None
    return "max" if v < 0 else str(v)


def io_max_lines(bio: BlockIOResources) -> list[str]:
    """One io.max line per device: 'MAJ:MIN rbps=.. wbps=.. riops=.. wiops=..'."""
    keys = {"read_bps_device": "rbps", "write_bps_device": "wbps",
            "read_iops_device": "riops", "write_iops_device": "wiops"}
    per_dev: dict[tuple[int, int], list[str]] = {}
    for name, devs in bio.throttles().items():
        for d in devs:
            rate = "max" if d.rate <= 0 else str(d.rate)
            per_dev.setdefault((d.major, d.minor), []).append(f"{keys[name]}={rate}")
    return [f"{maj}:{mnr} " + " ".join(kv) for (maj, mnr), kv in per_dev.items()]


def v1_memory_order(current_limit: int | None, new_limit: int | None) -> list[str]:
    """Which of memory.limit_in_bytes / memory.memsw.limit_in_bytes to write first.

    The kernel insists memsw >= limit at every moment (landmines 6.2): when the limit goes up
    (or to unlimited) memsw must be raised first; when it goes down the limit must drop first.
    """
    def big(v: int | None) -> float:
        return float("inf") if v is None or v < 0 else float(v)
    if new_limit is not None and big(new_limit) > big(current_limit):
        return ["memsw", "limit"]
    return ["limit", "memsw"]
