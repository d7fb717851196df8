"""What the user asked for (ContainerRequest) -> the container's config and its OCI spec.

Pure logic: no kernel calls, so every rule here (ENTRYPOINT/CMD, env files, volumes, restart
policies, capabilities) is unit tested. The OCI-shaped spec is the contract with the runtime
layer (monitor + init); the docker-shaped Config/HostConfig are what `inspect` shows.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from nsbox.runtime import caps as C
from nsbox.runtime.defaults import DEFAULT_PATH, MASKED_PATHS, READONLY_PATHS
from nsbox.runtime.errors import InvalidArgument

ENV_NAME = re.compile(r"^[^=\s]+$")


@dataclass
class ContainerRequest:
    image: str
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None          # None: flag absent; "": reset
    name: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    tty: bool = False
    interactive: bool = False
    volumes: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    read_only: bool = False
    restart: str = "no"
    init: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    labels: list[str] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    auto_remove: bool = False
    network: str = "bridge"
    network_aliases: list[str] = field(default_factory=list)
    ip: str = ""
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    dns: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    pod: str = ""
    log_opts: list[str] = field(default_factory=list)
    sysctls: list[str] = field(default_factory=list)
    resources: dict = field(default_factory=dict)   # docker resource flags, parsed by cgroups/units
    oom_score_adj: int | None = None
    security_opts: list[str] = field(default_factory=list)
    console_size: tuple[int, int] | None = None    # rows, cols
    userns: str | None = None                       # None: the root's default (runtime/userns.py)
    uidmap: list[str] = field(default_factory=list)
    gidmap: list[str] = field(default_factory=list)


# --- environment -----------------------------------------------------------

def parse_env_line(line: str, source: str = "") -> str | None:
    """One `-e` value or env-file line -> 'K=V', or None when K is unset on the host."""
    key, eq, value = line.partition("=")
    if not key:
        raise InvalidArgument(f"invalid environment variable: {line}")
    if not ENV_NAME.match(key):
        raise InvalidArgument(f"invalid environment variable: {line!r}" if not source else
                              f"{source}: variable '{key}' contains whitespaces")
    if eq:
        return f"{key}={value}"
    host = os.environ.get(key)
    return None if host is None else f"{key}={host}"


def parse_env_file(path: str) -> list[str]:
    """docker's env-file rules: KEY=VALUE per line, '#' comments, bare KEY taken from the host."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{path}: invalid utf8 bytes") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        kv = parse_env_line(line, source=f"poorly formatted environment in {path}")
        if kv is not None:
            out.append(kv)
    return out


def merge_env(image_env: list[str], files: list[str], flags: list[str]) -> list[str]:
    """Image env, then env files, then -e; a later value for a key replaces the earlier one in place."""
    merged: dict[str, str] = {}
    for e in image_env or []:
        k, _, _ = e.partition("=")
        merged[k] = e
    for path in files:
        for e in parse_env_file(path):
            merged[e.partition("=")[0]] = e
    for line in flags:
        e = parse_env_line(line)
        if e is not None:
            merged[e.partition("=")[0]] = e
    if "PATH" not in merged:
        merged = {"PATH": f"PATH={DEFAULT_PATH}", **merged}
    return list(merged.values())


# --- command ---------------------------------------------------------------

def resolve_command(image_cfg: dict, entrypoint: str | None, cmd: list[str]) -> tuple[list[str], list[str]]:
    """docker's ENTRYPOINT/CMD rules -> (entrypoint, cmd) as the container will hold them.

    No --entrypoint: the image's entrypoint stays; the image's CMD applies unless args are given.
    --entrypoint X: replaces the entrypoint AND clears the image's CMD.
    --entrypoint "": no entrypoint; the image's CMD applies unless args are given.
    """
    if entrypoint:
        return [entrypoint], list(cmd)
    ep = [] if entrypoint == "" else list(image_cfg.get("Entrypoint") or [])
    return ep, list(cmd) if cmd else list(image_cfg.get("Cmd") or [])


# --- mounts ----------------------------------------------------------------

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class VolumeSpec:
    kind: str            # bind | volume
    source: str          # host path or volume name ("" for anonymous)
    destination: str
    readonly: bool = False
    options: list[str] = field(default_factory=list)


def parse_volume(spec: str) -> VolumeSpec:
    """-v host:ctr[:opts] | name:ctr[:opts] | ctr."""
    bad = InvalidArgument(f"invalid volume specification: '{spec}'")
    parts = spec.split(":")
    if not spec or len(parts) > 3 or any(p == "" for p in parts):
        raise bad
    opts: list[str] = []
    if len(parts) == 1:
        src, dst = "", parts[0]
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            src, dst = parts
        else:
            src, dst, opts = "", parts[0], parts[1].split(",")
            if src == "" and not dst.startswith("/"):
                raise bad
    else:
        src, dst, opts = parts[0], parts[1], parts[2].split(",")
    if not dst.startswith("/") or dst == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config: "
                              "destination must be an absolute path other than /") if dst == "/" else bad
    valid_opts = {"ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy",
                  "idmap"}
    for o in opts:
        if o not in valid_opts:
            raise InvalidArgument(f"invalid mode: {o}")
    if "ro" in opts and "rw" in opts:
        raise InvalidArgument(f"invalid mode: {','.join(opts)}")
    readonly = "ro" in opts
    if src.startswith("/"):
        return VolumeSpec("bind", os.path.normpath(src), os.path.normpath(dst), readonly, opts)
    if src and not VOLUME_NAME.match(src):
        raise InvalidArgument(f'"{src}" includes invalid characters for a local volume name, '
                              "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                              "directory, use absolute path")
    return VolumeSpec("volume", src, os.path.normpath(dst), readonly, opts)


def parse_tmpfs(spec: str) -> dict:
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs: {spec}: destination must be an absolute path")
    options = ["nosuid", "nodev", "noexec"]
    for o in filter(None, opts.split(",")):
        if not re.match(r"^[a-z_]+(=[A-Za-z0-9_.:]+)?$", o):
            raise InvalidArgument(f"invalid tmpfs option: {o}")
        options.append(o)
    return {"destination": os.path.normpath(dst), "type": "tmpfs", "source": "tmpfs", "options": options}


# --- policies and labels ---------------------------------------------------

def parse_restart(value: str) -> dict:
    name, _, count = (value or "no").partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy: {value}")
    if count and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if count:
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart policy: maximum retry count must be an integer: {value}")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def parse_labels(labels: list[str], files: list[str] = ()) -> dict:
    out: dict[str, str] = {}
    lines = []
    for path in files:
        try:
            with open(path) as f:
                lines += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
    for item in lines + list(labels):
        k, _, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label: {item!r}")
        out[k] = v
    return out


def parse_log_opts(opts: list[str]) -> dict:
    out = {}
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq or k not in ("max-size", "max-file"):
            raise InvalidArgument(f"unknown log opt '{k}' for json-file log driver" if eq else
                                  f"invalid log opt: {o}")
        out[k] = v
    if "max-file" in out:
        if not out["max-file"].isdigit() or int(out["max-file"]) < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if "max-size" not in out:
            raise InvalidArgument("max-file can only be used with max-size")
    if "max-size" in out:
        from nsbox.runtime.units import ram_in_bytes as parse_bytes
        parse_bytes(out["max-size"])
    return out


def parse_sysctls(items: list[str], network_mode: str) -> dict:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"sysctl '{item}' is not allowed")
        namespaced = k.startswith(("net.", "kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue."))
        if not namespaced:
            raise InvalidArgument(f"sysctl '{k}' is not allowed")
        if k.startswith("net.") and network_mode == "host":
            raise InvalidArgument(f"sysctl '{k}' is not allowed in host network namespace")
        out[k] = v
    return out


# --- the OCI spec ----------------------------------------------------------

def base_mounts(privileged: bool) -> list[dict]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
    ]


def parse_security_opts(opts: list[str], privileged: bool) -> dict:
    """--security-opt: seccomp=unconfined|default|PROFILE.json, no-new-privileges[=true|false].

    "seccomp" comes back as True (the default profile), False (unconfined) or a profile's path,
    read and resolved at create time (runtime/seccomp.py).
    """
    out: dict = {"seccomp": not privileged, "no_new_privileges": not privileged}
    for o in opts:
        # key=value, or docker's older key:value; the first of the two separates (a path may hold ':')
        cut = min((i for i in (o.find("="), o.find(":")) if i >= 0), default=len(o))
        key, value = o[:cut], o[cut + 1:]
        if key == "seccomp" and value in ("unconfined", "default"):
            out["seccomp"] = value == "default" and not privileged
        elif key == "seccomp" and value.strip() and "\0" not in value:
            out["seccomp"] = False if privileged else value  # --privileged is unconfined, as in docker
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            out["no_new_privileges"] = value != "false"
        elif key in ("label", "apparmor") and value in ("disable", "unconfined"):
            continue  # no LSM profiles in nsbox: accepted, like podman on a host without them
        else:
            raise InvalidArgument(f"invalid --security-opt: {o!r}")
    return out


def build_spec(*, args: list[str], env: list[str], cwd: str, user: str, hostname: str, tty: bool,
               caps: list[str], privileged: bool, read_only: bool, mounts: list[dict],
               namespaces: list[dict], resources: dict, cgroups_path: str, sysctls: dict,
               oom_score_adj: int | None, console_size: tuple[int, int] | None,
               security: dict | None = None) -> dict:
    bounding = [f"CAP_{c}" for c in caps]
    process = {
        "terminal": tty,
        "user": {"uid": 0, "gid": 0, "username": user},
        "args": args,
        "env": env,
        "cwd": cwd or "/",
        "capabilities": {"bounding": bounding, "effective": bounding, "permitted": bounding,
                         "inheritable": [], "ambient": []},
        "noNewPrivileges": (security or {}).get("no_new_privileges", not privileged),
    }
    if oom_score_adj is not None:
        process["oomScoreAdj"] = oom_score_adj
    if console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": read_only},
        "hostname": hostname,
        "mounts": base_mounts(privileged) + mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": cgroups_path,
            "sysctl": sysctls,
            "maskedPaths": [] if privileged else list(MASKED_PATHS),
            "readonlyPaths": [] if privileged else list(READONLY_PATHS),
            "seccomp": (security or {}).get("seccomp", not privileged),
        },
        "annotations": {},
    }


def resolve_caps(req: ContainerRequest) -> list[str]:
    names = C.resolve(req.cap_add, req.cap_drop, req.privileged)
    # never ask for more than this process has (root here lacks CAP_SYS_RESOURCE)
    have = C.host_bounding()
    return [n for n in names if have & (1 << C.NUMBER[n])]
