"""`version` and `info`."""
from __future__ import annotations

import json
import os
import platform

import click

from nsbox.cli.common import CliContext, pass_cli

from nsbox.runtime import __version__ as VERSION


@click.command()
@click.option("-f", "--format", "fmt", default=None)
def version(fmt):
    """Show the nsbox version information."""
    info = {"Client": {"Version": VERSION, "ApiVersion": "1.41", "GoVersion": f"python{platform.python_version()}",
                       "Os": "linux", "Arch": platform.machine()},
            "Server": {"Version": VERSION, "Kernel": platform.release()}}
    if fmt == "json":
        click.echo(json.dumps(info))
    elif fmt:
        from nsbox.cli.format import render
        click.echo(render(fmt, info))
    else:
        click.echo(f"nsbox version {VERSION}\nPython {platform.python_version()}\nKernel {platform.release()}")


def gather(paths) -> dict:
    from nsbox.runtime import state as S
    from nsbox.runtime.engine import Engine
    from nsbox.runtime.cgroups import get_driver
    drv = get_driver()
    items = Engine(paths).list(all_=True)
    counts = {"running": 0, "paused": 0, "stopped": 0}
    for _, _, st in items:
        key = {S.RUNNING: "running", S.PAUSED: "paused", S.RESTARTING: "running"}.get(st.Status, "stopped")
        counts[key] += 1
    try:
        from nsbox.image.store import ImageStore
        istore = ImageStore(paths)
        n_images, storage = len(istore.list()), istore.driver_name
    except Exception as e:  # an unreadable store must not hide the rest of info
        n_images, storage = 0, f"unknown ({e})"
    from nsbox.runtime.userns import default_mode
    userns, userns_from = default_mode(paths.root)
    return {
        "Containers": len(items), "ContainersRunning": counts["running"], "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"], "Images": n_images, "Driver": storage,
        "CgroupVersion": str(drv.version), "CgroupDriver": "cgroupfs", "CgroupDriverName": drv.name,
        "NsboxRoot": paths.root, "NsboxRunRoot": paths.runroot, "CgroupParent": paths.cgroup_parent,
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "Architecture": platform.machine(),
        "NCPU": os.cpu_count(), "ServerVersion": VERSION, "LoggingDriver": "json-file",
        "DefaultRuntime": "nsbox",
        "DefaultUsernsMode": userns, "DefaultUsernsModeSource": userns_from,
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


@click.command()
@click.option("-f", "--format", "fmt", default=None)
@pass_cli
def info(ctx: CliContext, fmt):
    """Display system-wide information."""
    data = gather(ctx.paths)
    if fmt == "json":
        click.echo(json.dumps(data))
        return
    if fmt:
        from nsbox.cli.format import render
        click.echo(render(fmt, data))
        return
    lines = [
        f"Containers: {data['Containers']}", f" Running: {data['ContainersRunning']}",
        f" Paused: {data['ContainersPaused']}", f" Stopped: {data['ContainersStopped']}",
        f"Images: {data['Images']}", f"Server Version: {data['ServerVersion']}",
        f"Storage Driver: {data['Driver']}", f"Logging Driver: {data['LoggingDriver']}",
        f"Cgroup Driver: {data['CgroupDriver']}", f"Cgroup Version: {data['CgroupVersion']}",
        f"Cgroup Driver Name: {data['CgroupDriverName']}", f"Cgroup Parent: {data['CgroupParent']}",
        f"Kernel Version: {data['KernelVersion']}", f"Operating System: {data['OperatingSystem']}",
        f"Architecture: {data['Architecture']}", f"CPUs: {data['NCPU']}",
        f"Nsbox Root Dir: {data['NsboxRoot']}", f"Nsbox Run Root Dir: {data['NsboxRunRoot']}",
        f"Default User Namespace: {data['DefaultUsernsMode']} ({data['DefaultUsernsModeSource']})",
    ]
    click.echo("\n".join(lines))
