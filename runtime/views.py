"""docker-shaped views of a container: `inspect` JSON and the `ps` row."""
from __future__ import annotations

import time

from nsbox.runtime import state as S
from nsbox.runtime.fsutil import parse_iso
from nsbox.runtime.humanize import human_duration


def inspect(rec, cfg: dict, st: S.ContainerState) -> dict:
    net = st.Network or {}
    mode = cfg["HostConfig"].get("NetworkMode", "bridge")
    return {
        "Id": cfg["Id"],
        "Created": cfg["Created"],
        "Path": cfg["Path"],
        "Args": cfg["Args"],
        "State": {
            "Status": st.Status,
            "Running": st.Status in (S.RUNNING, S.PAUSED),
            "Paused": st.Status == S.PAUSED,
            "Restarting": st.Status == S.RESTARTING,
            "OOMKilled": st.OOMKilled,
            "Dead": st.Status == S.DEAD,
            "Pid": st.Pid if st.Status in (S.RUNNING, S.PAUSED) else 0,
            "ExitCode": st.ExitCode,
            "Error": st.Error,
            "StartedAt": st.StartedAt,
            "FinishedAt": st.FinishedAt,
        },
        "Image": cfg["Image"],
        "ResolvConfPath": f"{rec.dir}/resolv.conf",
        "HostnamePath": f"{rec.dir}/hostname",
        "HostsPath": f"{rec.dir}/hosts",
        "LogPath": cfg.get("LogPath", rec.log_path),
        "Name": cfg["Name"],
        "RestartCount": st.RestartCount,
        "Driver": cfg.get("Driver", "overlay"),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": cfg["HostConfig"],
        "GraphDriver": {"Name": cfg.get("Driver", "overlay"),
                        "Data": {"LowerDir": ":".join(cfg.get("Rootfs", {}).get("lowerdirs") or []),
                                 "UpperDir": cfg.get("Rootfs", {}).get("upper") or "",
                                 "WorkDir": cfg.get("Rootfs", {}).get("work") or "",
                                 "MergedDir": cfg.get("RootfsPath", "")}},
        "Mounts": [{k: v for k, v in m.items() if k != "Anonymous"} for m in cfg.get("Mounts", [])],
        "Config": cfg["Config"],
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": st.NetNS,
            "Ports": net.get("Ports", {}),
            "IPAddress": net.get("IPAddress", ""), "IPPrefixLen": net.get("IPPrefixLen", 0),
            "Gateway": net.get("Gateway", ""), "MacAddress": net.get("MacAddress", ""),
            "Networks": net.get("Networks", {} if mode in ("host", "none") else {}),
        },
        "Pod": cfg.get("Pod", ""),
    }


def status_text(st: S.ContainerState) -> str:
    now = time.time()
    if st.Status == S.RUNNING:
        return f"Up {human_duration(now - parse_iso(st.StartedAt))}"
    if st.Status == S.PAUSED:
        return f"Up {human_duration(now - parse_iso(st.StartedAt))} (Paused)"
    if st.Status == S.RESTARTING:
        return f"Restarting ({st.ExitCode}) {human_duration(now - parse_iso(st.FinishedAt))} ago"
    if st.Status == S.EXITED:
        if parse_iso(st.FinishedAt) == 0:
            return "Created"
        return f"Exited ({st.ExitCode}) {human_duration(now - parse_iso(st.FinishedAt))} ago"
    if st.Status == S.CREATED:
        return "Created"
    if st.Status == S.REMOVING:
        return "Removal In Progress"
    return st.Status.capitalize()


def ports_text(st: S.ContainerState) -> str:
    out = []
    for cport, binds in sorted((st.Network or {}).get("Ports", {}).items()):
        if not binds:
            continue
        for b in binds:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{cport}")
    return ", ".join(out)


def ps_row(rec, cfg: dict, st: S.ContainerState, no_trunc: bool = False) -> dict:
    cmd = " ".join([cfg["Path"]] + cfg["Args"])
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    created = parse_iso(cfg["Created"])
    return {
        "ID": rec.id if no_trunc else rec.id[:12],
        "Image": cfg.get("ImageName", ""),
        "Command": f'"{cmd}"',
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
        "RunningFor": f"{human_duration(time.time() - created)} ago",
        "Status": status_text(st),
        "State": st.Status,
        "Ports": ports_text(st),
        "Names": cfg["Name"].lstrip("/"),
        "Labels": ",".join(f"{k}={v}" for k, v in (cfg["Config"].get("Labels") or {}).items()),
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in cfg.get("Mounts", [])),
        "Networks": cfg["HostConfig"].get("NetworkMode", ""),
        "Pod": cfg.get("Pod", "")[:12],
        "Size": "0B",
    }
