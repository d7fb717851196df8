"""User namespaces: what --userns/--uidmap/--gidmap mean, and which host ids a container gets.

`--userns host` (the default, as docker) keeps container root the host's root. `--userns
auto[:size=N]` gives the container a private range of host ids, carved out of the subordinate
ids /etc/subuid and /etc/subgid grant to the dedicated user `nsbox` (podman's `containers`
convention), never overlapping another container of the same root: allocations are recorded in
<root>/userns/allocations.json under a flock, survive restarts and are released on rm.
`--uidmap/--gidmap CONTAINER_ID:HOST_ID:SIZE` (podman's format) state the mapping outright.

A root-wide default (NSBOX_USERNS, or "userns" in <root>/userns/config.json) makes every
container unprivileged on the host, like docker's userns-remap.

Pure logic plus two small files; the kernel side (creating the namespace, idmapped mounts) lives
in runtime/idmap.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from nsbox.runtime.errors import InvalidArgument, NsboxError
from nsbox.runtime.fsutil import write_json

SUBID_USER = "nsbox"
DEFAULT_SIZE = 65536
MAX_ID = 4294967295          # (uid_t)-1 is never a valid id
MAX_MAPS = 340               # the kernel's limit of lines in uid_map since 4.15


@dataclass(frozen=True)
class IdMap:
    container: int
    host: int
    size: int

    def text(self) -> str:
        return f"{self.container}:{self.host}:{self.size}"

    def oci(self) -> dict:
        return {"containerID": self.container, "hostID": self.host, "size": self.size}


@dataclass
class UsernsRequest:
    mode: str = "host"                  # host | auto | private (explicit maps)
    size: int = 0                       # auto: 0 = the default size
    uidmap: list[IdMap] = field(default_factory=list)
    gidmap: list[IdMap] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return self.mode != "host"


# --- parsing (every function here is fed by the user) ----------------------

def _show(value: str) -> str:
    """A user's value inside an error message: quoted, escaped, and short."""
    r = repr(value[:40])
    return r if len(r) <= 64 else r[:60] + "...'"


def _int(text: str, what: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not low <= int(text) <= high:
        raise InvalidArgument(f"invalid {what}: {_show(text)}")
    return int(text)


def parse_idmap(value: str, flag: str = "--uidmap") -> IdMap:
    """CONTAINER_ID:HOST_ID:SIZE, as podman's --uidmap and --gidmap."""
    parts = value.split(":")
    if len(parts) != 3:
        raise InvalidArgument(f"invalid {flag} {_show(value)}: expected CONTAINER_ID:HOST_ID:SIZE")
    c = _int(parts[0], f"{flag} container id", 0, MAX_ID - 1)
    h = _int(parts[1], f"{flag} host id", 0, MAX_ID - 1)
    n = _int(parts[2], f"{flag} size", 1, MAX_ID)
    if c + n > MAX_ID or h + n > MAX_ID:
        raise InvalidArgument(f"invalid {flag} {_show(value)}: the range goes past the largest id")
    return IdMap(c, h, n)


def check_maps(maps: list[IdMap], flag: str) -> list[IdMap]:
    """No two ranges may overlap on either side (the kernel refuses such a uid_map)."""
    if len(maps) > MAX_MAPS:
        raise InvalidArgument(f"too many {flag} ranges: {len(maps)} (at most {MAX_MAPS})")
    for side in ("container", "host"):
        spans = sorted((getattr(m, side), getattr(m, side) + m.size) for m in maps)
        for (a0, a1), (b0, _) in zip(spans, spans[1:]):
            if b0 < a1:
                raise InvalidArgument(f"invalid {flag}: {side} ranges overlap at id {b0}")
    return maps


def parse_userns(value: str | None, uidmaps: list[str] = (), gidmaps: list[str] = ()) -> UsernsRequest:
    """--userns host|auto[:size=N] plus --uidmap/--gidmap -> a UsernsRequest.

    None means "the flag was not given": the root's default applies (see default_mode). Explicit
    maps imply a private namespace; with only one of the two flags the other mirrors it, as podman.
    """
    uids = check_maps([parse_idmap(v, "--uidmap") for v in uidmaps], "--uidmap")
    gids = check_maps([parse_idmap(v, "--gidmap") for v in gidmaps], "--gidmap")
    if uids or gids:
        if value not in (None, "", "private"):
            raise InvalidArgument(f"--userns {_show(value)} cannot be combined with --uidmap/--gidmap")
        uids, gids = uids or gids, gids or uids
        if not any(m.container == 0 for m in uids):
            raise InvalidArgument("--uidmap must map container uid 0 (the container's root)")
        if not any(m.container == 0 for m in gids):
            raise InvalidArgument("--gidmap must map container gid 0")
        return UsernsRequest("private", 0, uids, gids)
    if value is None or value == "":
        return UsernsRequest("host")
    name, _, opts = value.partition(":")
    if name == "host" and not opts:
        return UsernsRequest("host")
    if name != "auto":
        raise InvalidArgument(f"invalid --userns {_show(value)}: expected host or auto[:size=N]")
    size = 0
    for opt in filter(None, opts.split(",")):
        key, eq, v = opt.partition("=")
        if key != "size" or not eq:
            raise InvalidArgument(f"invalid --userns option {_show(opt)}: only size=N is known")
        size = _int(v, "--userns size", 1, MAX_ID)
    if opts and not size:
        raise InvalidArgument(f"invalid --userns {_show(value)}: expected auto:size=N")
    return UsernsRequest("auto", size)


def parse_subids(text: str, user: str, uid: int | None = None) -> list[tuple[int, int]]:
    """Lines NAME_OR_UID:START:COUNT of /etc/subuid or /etc/subgid -> the user's (start, count)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        if parts[0] != user and (uid is None or parts[0] != str(uid)):
            continue
        if all(p.isascii() and p.isdigit() for p in parts[1:]) and int(parts[2]) > 0:
            out.append((int(parts[1]), int(parts[2])))
    return sorted(out)


def first_fit(free: list[tuple[int, int]], used: list[tuple[int, int]], size: int) -> int | None:
    """The lowest start of `size` ids inside one of the `free` ranges, clear of every `used` range."""
    used = sorted(used)
    for start, count in sorted(free):
        cand, end = start, start + count
        for u0, u1 in used:
            if u1 <= cand:
                continue
            if u0 >= cand + size:
                break
            cand = max(cand, u1)
        if cand + size <= end:
            return cand
    return None


def host_id(maps: list[IdMap], cid: int) -> int | None:
    """The host id container id `cid` maps to (None: unmapped)."""
    for m in maps:
        if m.container <= cid < m.container + m.size:
            return m.host + cid - m.container
    return None


def maps_from_oci(entries: list[dict] | None) -> list[IdMap]:
    return [IdMap(int(e["containerID"]), int(e["hostID"]), int(e["size"])) for e in entries or []]


# --- the root's default ------------------------------------------------------

def config_path(root: str) -> str:
    return os.path.join(root, "userns", "config.json")


def default_mode(root: str) -> tuple[str, str]:
    """(value, where it came from): NSBOX_USERNS wins over the root's config file; else host."""
    env = os.environ.get("NSBOX_USERNS")
    if env:
        return env, "NSBOX_USERNS"
    try:
        with open(config_path(root)) as f:
            value = json.load(f).get("userns") or ""
    except (OSError, ValueError, AttributeError):
        value = ""
    return (value, config_path(root)) if value else ("host", "default")


# --- allocation ------------------------------------------------------------

class Allocator:
    """Ranges of host ids handed to --userns auto containers of one state root."""

    def __init__(self, root: str, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid",
                 user: str = SUBID_USER):
        self.dir = os.path.join(root, "userns")
        self.path = os.path.join(self.dir, "allocations.json")
        self.containers = os.path.join(root, "containers")
        self.subuid, self.subgid, self.user = subuid, subgid, user

    def _locked(self):
        from nsbox.runtime.fsutil import locked
        os.makedirs(self.dir, exist_ok=True)
        return locked(os.path.join(self.dir, "lock"))

    def _load(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _granted(self, path: str) -> list[tuple[int, int]]:
        import pwd
        try:
            uid = pwd.getpwnam(self.user).pw_uid
        except KeyError:
            uid = None
        try:
            with open(path) as f:
                return parse_subids(f.read(), self.user, uid)
        except OSError:
            return []

    def allocate(self, cid: str, size: int = 0) -> tuple[list[IdMap], list[IdMap]]:
        size = size or DEFAULT_SIZE
        with self._locked():
            data = self._load()
            # a container that no longer exists (a crash between allocation and record) holds nothing
            data = {k: v for k, v in data.items() if k == cid or os.path.isdir(os.path.join(self.containers, k))}
            out = []
            for kind, path in (("uid", self.subuid), ("gid", self.subgid)):
                granted = self._granted(path)
                if not granted:
                    raise NsboxError(f"--userns auto: no subordinate ids for user {self.user!r} in {path} "
                                     f"(add a line like '{self.user}:2147483647:2147483648')")
                used = [(s, s + n) for v in data.values() if _valid(v) for _, s, n in v[kind]]
                start = first_fit(granted, used, size)
                if start is None:
                    raise NsboxError(f"--userns auto: no free range of {size} ids left in {path}")
                out.append([IdMap(0, start, size)])
            data[cid] = {"uid": [[0, out[0][0].host, size]], "gid": [[0, out[1][0].host, size]]}
            write_json(self.path, data, durable=True)
            return out[0], out[1]

    def release(self, cid: str) -> None:
        if not os.path.exists(self.path):
            return
        with self._locked():
            data = self._load()
            if data.pop(cid, None) is not None:
                write_json(self.path, data, durable=True)

    def allocations(self) -> dict:
        return self._load()


def _valid(v) -> bool:
    return isinstance(v, dict) and "uid" in v and "gid" in v


# --- the container's spec ----------------------------------------------------

TMPFS_TYPES = ("tmpfs",)
UNPRIVILEGED_SYSCTLS = {  # docker's defaults for a container's own netns; they stand in for
    "net.ipv4.ip_unprivileged_port_start": "0",        # CAP_NET_BIND_SERVICE over a host-owned netns
    "net.ipv4.ping_group_range": "0 2147483647",       # and ICMP echo sockets without CAP_NET_RAW
}


def shape_spec(spec: dict, uidmap: list[IdMap], gidmap: list[IdMap], own_netns: bool, idmapped: bool = True) -> None:
    """Make an OCI spec run in a user namespace with these maps (in place).

    Mounts the init makes as the host's root would belong to ids the container cannot see:
    tmpfs and devpts get the container root's (and tty group's) host ids; named volumes and
    `:idmap` binds are marked for an idmapped mount (init.do_mount), or without idmapped mounts
    (idmapped=False) volumes are handed to the container's root by chown and `:idmap` is refused.
    """
    linux = spec["linux"]
    linux["uidMappings"] = [m.oci() for m in uidmap]
    linux["gidMappings"] = [m.oci() for m in gidmap]
    if not any(n["type"] == "user" for n in linux["namespaces"]):
        linux["namespaces"].append({"type": "user"})
    uid0, gid0 = host_id(uidmap, 0), host_id(gidmap, 0)
    for m in spec["mounts"]:
        opts = m.setdefault("options", [])
        if m.get("type") in TMPFS_TYPES:
            if not any(o.startswith("uid=") for o in opts):
                opts.append(f"uid={uid0}")
            if not any(o.startswith("gid=") for o in opts):
                opts.append(f"gid={gid0}")
        elif m.get("type") == "devpts":
            for i, o in enumerate(opts):
                if o.startswith("gid=") and o[4:].isdigit():
                    mapped = host_id(gidmap, int(o[4:]))
                    opts[i] = f"gid={gid0 if mapped is None else mapped}"
        elif m.get("nsbox.volume") or "idmap" in opts:
            if not idmapped and not m.get("nsbox.volume"):
                raise InvalidArgument(f"{m['destination']}: idmap needs idmapped mounts, which this host's "
                                      "filesystem does not support")
            opts[:] = [o for o in opts if o != "idmap"] + ["nsbox-idmap" if idmapped else "nsbox-chown"]
    if own_netns:
        sysctl = linux.setdefault("sysctl", {})
        for k, v in UNPRIVILEGED_SYSCTLS.items():
            sysctl.setdefault(k, v)


def shift_ids(uidmap: list[IdMap], gidmap: list[IdMap]):
    """(container uid, gid) -> host ids; unmapped ids become the overflow id, as the kernel shows them."""
    def shift(uid: int, gid: int) -> tuple[int, int]:
        u, g = host_id(uidmap, uid), host_id(gidmap, gid)
        u = host_id(uidmap, 65534) if u is None else u
        g = host_id(gidmap, 65534) if g is None else g
        return (-1 if u is None else u), (-1 if g is None else g)   # -1: lchown leaves it
    return shift


def host_config(req: UsernsRequest, uidmap: list[IdMap], gidmap: list[IdMap]) -> dict:
    """What `inspect` shows under HostConfig."""
    mode = "" if not req.private else req.mode + (f":size={req.size}" if req.size else "")
    return {"UsernsMode": mode,
            "IDMappings": {"UidMap": [m.text() for m in uidmap], "GidMap": [m.text() for m in gidmap]}
            if req.private else None}
