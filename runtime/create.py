"""`create`: a ContainerRequest becomes a container on disk (config, rootfs plan, /etc files).

Everything made here is undone if any later step fails, so a bad flag, image or volume leaves
nothing half-created behind.
"""
from __future__ import annotations

import dataclasses
import os
import socket

from nsbox.runtime import specgen as G
from nsbox.runtime import state as S
from nsbox.runtime.errors import InvalidArgument, NotFound
from nsbox.runtime.fsutil import now_iso
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord

HOSTS_HEADER = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def build_container(engine, req: G.ContainerRequest, on_record=None) -> tuple[ContainerRecord, list[str]]:
    paths = engine.paths
    warnings: list[str] = []

    # validate everything that needs no state first: a bad flag must leave nothing behind
    from nsbox.image.store import ImageStore
    images = ImageStore(paths)
    image = images.ensure_default(req.image)
    icfg = image.config.get("config") or {}

    entrypoint, cmd = G.resolve_command(icfg, req.entrypoint, req.command)
    if not entrypoint and not cmd:
        raise InvalidArgument("no command specified")
    env = G.merge_env(icfg.get("Env") or [], req.env_files, req.env)
    restart = G.parse_restart(req.restart)
    if restart["Name"] and req.auto_remove:
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    labels = G.parse_labels(req.labels, req.label_files)
    log_opts = G.parse_log_opts(req.log_opts)
    vol_specs = [G.parse_volume(v) for v in req.volumes]
    tmpfs = [G.parse_tmpfs(t) for t in req.tmpfs]
    caps = G.resolve_caps(req)
    network = req.network or "bridge"
    if req.pod and network not in ("bridge", ""):
        raise InvalidArgument("invalid config provided: networking cannot be configured for a pod member; "
                              "the pod's infra container owns the network")
    if req.pod and (req.publish or req.publish_all):
        raise InvalidArgument("invalid config provided: published or exposed ports must be defined when the "
                              "pod is created")
    if network in ("host", "none") or network.startswith("container:"):
        if req.publish:
            warnings.append("Published ports are discarded when using host network mode"
                            if network == "host" else
                            f"published ports are ignored with --network {network}")
    sysctls = G.parse_sysctls(req.sysctls, network)
    security = G.parse_security_opts(req.security_opts, req.privileged)
    from nsbox.runtime.seccomp import for_container
    security["seccomp"] = for_container(security["seccomp"], [f"CAP_{c}" for c in caps])
    userns = _userns_request(paths, req)
    if userns is None and any("idmap" in v.options for v in vol_specs):
        raise InvalidArgument("the idmap volume option needs a user namespace (--userns auto)")
    stop_signal = req.stop_signal or icfg.get("StopSignal") or ""
    if stop_signal:
        from nsbox.runtime.engine import parse_signal
        parse_signal(stop_signal)
    resources, res_warnings = _resources(req.resources, req.privileged)
    warnings += res_warnings

    pod = None
    if req.pod:
        from nsbox.runtime.pods import PodStore
        pod = PodStore(paths).get(req.pod)

    other = None
    if network.startswith("container:"):
        other = engine.get(network.split(":", 1)[1])
    elif network not in ("host", "none", "bridge") and not req.pod:
        _check_network_exists(paths, network)

    rec, name = engine.store.new(req.name)
    try:
        if on_record is not None:
            on_record(rec)
        hostname = req.hostname or (socket.gethostname() if network == "host" else rec.id[:12])
        if other is not None and not req.hostname:
            hostname = other.config()["Config"]["Hostname"]
        if pod is not None and not req.hostname:
            hostname = pod.hostname
        mounts, mount_records = _mounts(paths, rec, vol_specs, tmpfs, icfg, network)
        if pod is not None and "ipc" in pod.shared_types() and "/dev/shm" not in {m["destination"] for m in mounts}:
            from nsbox.runtime.pods import shm_mount  # a shared ipc ns shares the infra's /dev/shm
            mounts.append(shm_mount(paths, pod))
        namespaces = _namespaces(network, other, pod)
        cgroup_parent = paths.cgroup_parent + (f"/pod-{pod.id[:12]}" if pod else "")
        uidmap, gidmap = _userns_maps(paths, rec, userns)
        spec = G.build_spec(
            args=entrypoint + cmd, env=env + ([f"HOSTNAME={hostname}"] if not any(e.startswith("HOSTNAME=") for e in env) else [])
            + (["TERM=xterm"] if req.tty and not any(e.startswith("TERM=") for e in env) else []),
            cwd=req.workdir or icfg.get("WorkingDir") or "/", user=req.user or icfg.get("User") or "",
            hostname=hostname, tty=req.tty, caps=caps, privileged=req.privileged, read_only=req.read_only,
            mounts=mounts, namespaces=namespaces, resources=resources, cgroups_path=f"{cgroup_parent}/{rec.id}",
            sysctls=sysctls, oom_score_adj=req.oom_score_adj, console_size=req.console_size,
            security=security)
        idmapped = True
        if userns is not None:
            from nsbox.runtime import userns as U
            from nsbox.runtime.idmap import mode_for
            idmapped = mode_for(os.path.join(paths.root, "userns"), images.root) == "idmap"
            U.shape_spec(spec, uidmap, gidmap, own_netns=network != "host" and not network.startswith("container:"),
                         idmapped=idmapped)
        plan = images.prepare_rootfs(rec.id, image.id, rec.dir, copy=not idmapped)
        if not idmapped:  # a private copy owned by the container's host ids
            from nsbox.runtime.idmap import chown_tree
            chown_tree(plan.rootfs, U.shift_ids(uidmap, gidmap))
            plan.idshift = "chown"
        if os.environ.get("NSBOX_TEST_CRASH") == "create":  # tests only: a kill -9 of a half-made create
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        rootfs_path = os.path.join(rec.dir, "merged")
        os.makedirs(rootfs_path, exist_ok=True)
        stop_timeout = req.stop_timeout
        cfg = {
            "Id": rec.id,
            "Created": now_iso(),
            "Path": (entrypoint + cmd)[0],
            "Args": (entrypoint + cmd)[1:],
            "Name": "/" + name,
            "Image": image.id,
            "ImageName": req.image,
            "Driver": plan.kind,
            "Pod": pod.id if pod else "",
            "Config": {
                "Hostname": hostname, "User": req.user or icfg.get("User") or "",
                "AttachStdin": req.interactive, "AttachStdout": True, "AttachStderr": True,
                "Tty": req.tty, "OpenStdin": req.interactive, "StdinOnce": req.interactive,
                "Env": spec["process"]["env"], "Cmd": cmd, "Entrypoint": entrypoint or None,
                "Image": req.image, "WorkingDir": req.workdir or icfg.get("WorkingDir") or "",
                "Labels": {**(icfg.get("Labels") or {}), **labels}, "StopSignal": stop_signal or None,
                "StopTimeout": stop_timeout, "ExposedPorts": icfg.get("ExposedPorts") or {},
                "Volumes": icfg.get("Volumes") or None,
            },
            "HostConfig": {
                "Binds": [v for v in req.volumes], "AutoRemove": req.auto_remove,
                "RestartPolicy": restart, "NetworkMode": network,
                "PortBindings": {}, "PublishAllPorts": req.publish_all, "Privileged": req.privileged,
                "CapAdd": req.cap_add or None, "CapDrop": req.cap_drop or None, "ReadonlyRootfs": req.read_only,
                "Tmpfs": {t["destination"]: ",".join(t["options"][3:]) for t in tmpfs} or None,
                "Init": req.init, "Dns": req.dns, "ExtraHosts": req.add_hosts or None,
                "LogConfig": {"Type": "json-file", "Config": log_opts}, "Sysctls": sysctls or None,
                "OomScoreAdj": req.oom_score_adj or 0, "Resources": req.resources,
                "SecurityOpt": req.security_opts or None,
                **_userns_host_config(userns, uidmap, gidmap),
            },
            "NetworkingConfig": {"EndpointsConfig": {network: {
                "Aliases": req.network_aliases, "IPAMConfig": {"IPv4Address": req.ip} if req.ip else None}}},
            "NetworkRequest": {"network": network, "aliases": req.network_aliases, "ip": req.ip,
                               "publish": req.publish, "publish_all": req.publish_all,
                               "dns": req.dns, "add_hosts": req.add_hosts},
            "Mounts": mount_records,
            "Rootfs": dataclasses.asdict(plan),
            "RootfsPath": rootfs_path,
            "LogPath": rec.log_path,
            "Spec": spec,
        }
        if network not in ("host", "none") and not network.startswith("container:") and not req.pod:
            from nsbox.runtime.netglue import validate_request  # parses -p and friends; no pyroute2
            cfg["HostConfig"]["PortBindings"] = validate_request(paths, cfg)
        write_etc_files(paths, rec, cfg, network, req, hostname)
        if userns is not None:  # container root may edit its own /etc/hosts, as without a user namespace
            from nsbox.runtime.userns import host_id
            for name in ("hosts", "hostname", "resolv.conf"):
                os.chown(os.path.join(rec.dir, name), host_id(uidmap, 0), host_id(gidmap, 0))
        rec.save_state(S.ContainerState())
        rec.save_config(cfg)  # last: config.json is what makes the record whole
    except BaseException:
        from nsbox.runtime.cleanup import remove
        try:
            remove(paths, rec, {"Name": "/" + name, "Mounts": locals().get("mount_records", [])}, volumes=True)
        except Exception:
            engine.store.forget(rec, name)
        raise
    finally:
        engine.store.done_creating(rec)
    return rec, warnings


def _userns_request(paths: Paths, req: G.ContainerRequest):
    """The user namespace asked for (flags, else the root's default); None: the host's."""
    if req.userns is None and not req.uidmap and not req.gidmap and not os.environ.get("NSBOX_USERNS") \
            and not os.path.exists(os.path.join(paths.root, "userns", "config.json")):
        return None  # the common case, without importing the userns module on run's hot path
    from nsbox.runtime import userns as U
    if req.userns is None and not req.uidmap and not req.gidmap:
        value, origin = U.default_mode(paths.root)
        try:
            userns = U.parse_userns(value)
        except InvalidArgument as e:
            raise InvalidArgument(f"{origin}: {e}") from None
    else:
        userns = U.parse_userns(req.userns, req.uidmap, req.gidmap)
    if userns.private and req.privileged:
        raise InvalidArgument("privileged mode is incompatible with user namespaces: use --userns host")
    return userns if userns.private else None


def _userns_maps(paths: Paths, rec: ContainerRecord, userns) -> tuple[list, list]:
    if userns is None:
        return [], []
    if userns.mode == "auto":
        from nsbox.runtime.userns import Allocator
        return Allocator(paths.root).allocate(rec.id, userns.size)
    return userns.uidmap, userns.gidmap


def _userns_host_config(userns, uidmap: list, gidmap: list) -> dict:
    if userns is None:
        return {"UsernsMode": "", "IDMappings": None}
    from nsbox.runtime.userns import host_config
    return host_config(userns, uidmap, gidmap)


def _check_network_exists(paths: Paths, name: str) -> None:
    from nsbox.runtime.netglue import network_exists
    if not network_exists(paths, name):
        raise NotFound(f"network {name} not found")


def _resources(flags: dict, privileged: bool) -> tuple[dict, list[str]]:
    # always: the device allowlist is part of the resources, flags or not
    from nsbox.runtime.units import resources_from_flags
    res, warnings = resources_from_flags(**flags, privileged=privileged)
    from nsbox.runtime.resources_ops import predict_warnings  # knobs this host cannot honour
    return res.to_dict(), list(warnings) + predict_warnings(res)


def _namespaces(network: str, other: ContainerRecord | None, pod) -> list[dict]:
    ns = [{"type": "pid"}, {"type": "mount"}]
    if pod is not None:
        infra = pod.infra_id
        for t in ("ipc", "uts", "network"):
            if t in pod.shared_types():
                ns.append({"type": t, "nsbox.join": infra})
            else:
                ns.append({"type": t})
        if "pid" in pod.shared_types():
            ns[0] = {"type": "pid", "nsbox.join": infra}
        return ns
    ns += [{"type": "uts"}, {"type": "ipc"}]
    if network == "host":
        return ns
    if network == "none":
        ns.append({"type": "network"})
    elif network.startswith("container:"):
        ns.append({"type": "network", "nsbox.join": other.id})
    else:
        ns.append({"type": "network", "nsbox.join": "netns"})
    return ns


def _mounts(paths: Paths, rec: ContainerRecord, vols: list[G.VolumeSpec], tmpfs: list[dict], icfg: dict,
            network: str) -> tuple[list[dict], list[dict]]:
    from nsbox.runtime.volumes import VolumeStore
    vs = VolumeStore(paths)
    mounts: list[dict] = []
    records: list[dict] = []
    taken = {v.destination for v in vols} | {t["destination"] for t in tmpfs}
    # image VOLUMEs without a user mount become anonymous volumes, as in docker
    for dest in sorted((icfg.get("Volumes") or {}).keys()):
        if os.path.normpath(dest) not in taken:
            vols.append(G.VolumeSpec("volume", "", os.path.normpath(dest)))
    for v in vols:
        opts = ["rbind"] + (["ro"] if v.readonly else []) + [o for o in v.options if o in (
            "private", "rprivate", "shared", "rshared", "slave", "rslave", "idmap")]
        if v.kind == "bind":
            if not os.path.exists(v.source):
                os.makedirs(v.source, exist_ok=True)  # docker -v creates a missing host dir
            mounts.append({"destination": v.destination, "type": "bind", "source": v.source, "options": opts})
            records.append({"Type": "bind", "Source": v.source, "Destination": v.destination, "Mode": ",".join(v.options),
                            "RW": not v.readonly, "Propagation": "rprivate"})
        else:
            vol = vs.create(v.source) if v.source else vs.create(anonymous=True)
            if "nocopy" not in v.options:
                opts.append("nsbox-copyup")
            mounts.append({"destination": v.destination, "type": "bind", "source": vol.Mountpoint, "options": opts,
                           "nsbox.volume": True})
            records.append({"Type": "volume", "Name": vol.Name, "Source": vol.Mountpoint,
                            "Destination": v.destination, "Driver": "local", "Mode": ",".join(v.options),
                            "RW": not v.readonly, "Propagation": "", "Anonymous": vol.Anonymous})
    for t in tmpfs:
        mounts.append(t)
        records.append({"Type": "tmpfs", "Source": "", "Destination": t["destination"], "RW": "ro" not in t["options"]})
    etc = [("/etc/hostname", "hostname"), ("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf")]
    for dest, name in etc:
        if dest not in taken:
            mounts.append({"destination": dest, "type": "bind", "source": os.path.join(rec.dir, name),
                           "options": ["rbind", "rprivate"]})
    return mounts, records


def write_etc_files(paths: Paths, rec: ContainerRecord, cfg: dict, network: str, req: G.ContainerRequest,
                    hostname: str) -> None:
    with open(os.path.join(rec.dir, "hostname"), "w") as f:
        f.write(hostname + "\n")
    with open(os.path.join(rec.dir, "resolv.conf"), "w") as f:
        f.write(resolv_conf(network, req.dns))
    write_hosts(paths, rec, cfg, {})


def resolv_conf(network: str, dns: list[str]) -> str:
    try:
        with open("/etc/resolv.conf") as f:
            host = f.read()
    except OSError:
        host = ""
    if network == "host" and not dns:
        return host
    lines = [ln for ln in host.splitlines() if not ln.startswith("nameserver")]
    servers = dns or [ln.split()[1] for ln in host.splitlines()
                      if ln.startswith("nameserver") and len(ln.split()) > 1
                      and not ln.split()[1].startswith(("127.", "::1"))]
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]  # docker's fallback when the host only has a local resolver
    return "\n".join([f"nameserver {s}" for s in servers] + lines) + "\n"


def write_hosts(paths: Paths, rec: ContainerRecord, cfg: dict, status: dict) -> None:
    """/etc/hosts: docker's header, --add-host entries, our own address and name, and peers."""
    mode = cfg["HostConfig"].get("NetworkMode", "bridge")
    if mode == "host":
        try:
            with open("/etc/hosts") as f:
                body = f.read()
        except OSError:
            body = HOSTS_HEADER
    else:
        body = HOSTS_HEADER
    for entry in cfg["HostConfig"].get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        body += f"{ip}\t{name}\n"
    hostname = cfg["Config"]["Hostname"]
    ip = (status or {}).get("IPAddress", "")
    if ip:
        aliases = [hostname] + [a for a in cfg.get("NetworkRequest", {}).get("aliases", []) if a != hostname]
        body += f"{ip}\t{' '.join(aliases)}\n"
        from nsbox.runtime.netglue import hosts_entries, render_hosts
        body = render_hosts(body, hosts_entries(paths, rec.id))
    elif mode == "none":
        body += f"127.0.1.1\t{hostname}\n"
    path = os.path.join(rec.dir, "hosts")
    # in place: a running container has this very inode bind-mounted
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write(body)
