"""Linux capabilities: names, docker's default set, and the masks the init applies."""
from __future__ import annotations

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
NUMBER = {n: i for i, n in enumerate(NAMES)}

# docker's (and runc's) default set
DEFAULT = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
           "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def normalize(name: str) -> str:
    """'net_admin', 'CAP_NET_ADMIN' -> 'NET_ADMIN'; 'ALL' stays."""
    from nsbox.runtime.errors import InvalidArgument
    n = name.strip().upper()
    if n.startswith("CAP_"):
        n = n[4:]
    if n != "ALL" and n not in NUMBER:
        raise InvalidArgument(f"invalid capability: {name}")
    return n


def resolve(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """docker's rules: privileged gets all; 'ALL' in drop empties the base; add wins over drop."""
    all_caps = [n for n in NAMES[: last_cap() + 1]]
    if privileged:
        return all_caps
    add = [normalize(c) for c in add]
    drop = [normalize(c) for c in drop]
    base = [] if "ALL" in drop else [c for c in DEFAULT if c not in drop]
    if "ALL" in add:
        return [c for c in all_caps if c not in drop or c in add]
    return sorted(set(base) | set(add), key=NUMBER.__getitem__)


def mask(names: list[str]) -> int:
    m = 0
    for n in names:
        m |= 1 << NUMBER[n]
    return m


def host_bounding() -> int:
    """The caps this process may keep at all (root here lacks CAP_SYS_RESOURCE)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << (last_cap() + 1)) - 1
