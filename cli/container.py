"""Container verbs: parse flags, call the engine, format the answer. Nothing else."""
from __future__ import annotations

import json
import os
import sys

import click

from nsbox.cli.common import CliContext, pass_cli, print_table, warn


def _engine(ctx: CliContext):
    from nsbox.runtime.engine import Engine
    return Engine(ctx.paths)


# --- run / create ----------------------------------------------------------

RESOURCE_FLAGS = ("memory", "memory_swap", "memory_reservation", "memory_swappiness", "oom_kill_disable", "cpus",
                  "cpu_shares", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit",
                  "blkio_weight", "blkio_weight_device", "device_read_bps", "device_write_bps",
                  "device_read_iops", "device_write_iops")


def container_options(f):
    opts = [
        click.option("--name", default=None, help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set environment variables."),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables."),
        click.option("-w", "--workdir", default="", help="Working directory inside the container."),
        click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("-h", "--hostname", default="", help="Container host name."),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--restart", default="no", help="Restart policy: no, always, on-failure[:N], unless-stopped."),
        click.option("--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps processes."),
        click.option("--stop-signal", default="", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container."),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container."),
        click.option("--label-file", multiple=True, help="Read in a line delimited file of labels."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--network", "--net", "network", default="bridge", help="Connect a container to a network."),
        click.option("--network-alias", multiple=True, help="Add network-scoped alias for the container."),
        click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--pod", default="", help="Run container in an existing pod."),
        click.option("--log-opt", multiple=True, help="Log driver options (max-size, max-file)."),
        click.option("--sysctl", multiple=True, help="Sysctl options."),
        click.option("--oom-score-adj", type=int, default=None, help="Tune host's OOM preferences (-1000 to 1000)."),
        click.option("--security-opt", multiple=True, help="Security options (seccomp=unconfined, no-new-privileges)."),
        click.option("--userns", default=None, help="User namespace: host, or auto[:size=N] (a private range of host ids)."),
        click.option("--uidmap", multiple=True, help="UID map CONTAINER_ID:HOST_ID:SIZE (a private user namespace)."),
        click.option("--gidmap", multiple=True, help="GID map CONTAINER_ID:HOST_ID:SIZE (a private user namespace)."),
        click.option("--pull", type=click.Choice(["always", "missing", "never"]), default="missing",
                     help="Pull image before running (always, missing, never)."),  # issue #8
        # resources (issue #4); parsed and validated by runtime/units.py
        click.option("-m", "--memory", default=None, help="Memory limit."),
        click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 for unlimited."),
        click.option("--memory-reservation", default=None, help="Memory soft limit."),
        click.option("--memory-swappiness", default=None, help="Tune container memory swappiness (0 to 100)."),
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer."),
        click.option("--cpus", default=None, help="Number of CPUs."),
        click.option("-c", "--cpu-shares", default=None, help="CPU shares (relative weight)."),
        click.option("--cpu-period", default=None, help="Limit CPU CFS period."),
        click.option("--cpu-quota", default=None, help="Limit CPU CFS quota."),
        click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)."),
        click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1)."),
        click.option("--pids-limit", default=None, help="Tune container pids limit (-1 for unlimited)."),
        click.option("--blkio-weight", default=None, help="Block IO (relative weight), between 10 and 1000."),
        click.option("--blkio-weight-device", multiple=True, help="Block IO weight (relative device weight)."),
        click.option("--device-read-bps", multiple=True, help="Limit read rate (bytes per second) from a device."),
        click.option("--device-write-bps", multiple=True, help="Limit write rate (bytes per second) to a device."),
        click.option("--device-read-iops", multiple=True, help="Limit read rate (IO per second) from a device."),
        click.option("--device-write-iops", multiple=True, help="Limit write rate (IO per second) to a device."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _pulled(ctx, image: str, policy: str) -> str:
    from nsbox.image.registry import image_for_run  # cheap: registry code loads only to pull
    return image_for_run(ctx.paths, image, policy)


def build_request(image: str, command: tuple, kw: dict):
    from nsbox.runtime.specgen import ContainerRequest
    from nsbox.runtime.client import terminal_size
    resources = {k: kw.pop(k) for k in RESOURCE_FLAGS}
    resources = {k: (list(v) if isinstance(v, tuple) else v) for k, v in resources.items()
                 if v not in (None, (), False)}
    return ContainerRequest(
        image=image, command=list(command), entrypoint=kw["entrypoint"], name=kw["name"], env=list(kw["env"]),
        env_files=list(kw["env_file"]), workdir=kw["workdir"], user=kw["user"], hostname=kw["hostname"],
        tty=kw["tty"], interactive=kw["interactive"], volumes=list(kw["volume"]), tmpfs=list(kw["tmpfs"]),
        read_only=kw["read_only"], restart=kw["restart"], init=kw["init"], stop_signal=kw["stop_signal"],
        stop_timeout=kw["stop_timeout"], labels=list(kw["label"]), label_files=list(kw["label_file"]),
        cap_add=list(kw["cap_add"]), cap_drop=list(kw["cap_drop"]), privileged=kw["privileged"],
        auto_remove=kw["auto_remove"], network=kw["network"], network_aliases=list(kw["network_alias"]),
        ip=kw["ip"], publish=list(kw["publish"]), publish_all=kw["publish_all"], dns=list(kw["dns"]),
        add_hosts=list(kw["add_host"]), pod=kw["pod"], log_opts=list(kw["log_opt"]), sysctls=list(kw["sysctl"]),
        resources=resources, oom_score_adj=kw["oom_score_adj"], security_opts=list(kw["security_opt"]),
        userns=kw["userns"], uidmap=list(kw["uidmap"]), gidmap=list(kw["gidmap"]),
        console_size=(terminal_size(0) or terminal_size(1) or (24, 80)) if kw["tty"] else None,
    )


def _attach_and_start(engine, rec, stdin: bool, tty: bool, proxy_signals: bool = True) -> int:
    """Start `rec` with this terminal attached; returns the container's exit code."""
    pid, sock = engine.start(rec, attach=True)
    return _relay(engine, rec, pid, sock, stdin, tty, proxy_signals)


def _relay(engine, rec, pid: int, sock, stdin: bool, tty: bool, proxy_signals: bool = True) -> int:
    """Our stdio (or terminal) <-> the container, until it exits; returns its exit code."""
    from nsbox.runtime import client
    if sock is None:  # it was already running: attach like `nsbox attach`
        sock = client.connect(rec.attach_path)
    if proxy_signals and not tty:
        import signal as _s

        def forward(sig, _frame):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        for s in (_s.SIGINT, _s.SIGTERM, _s.SIGHUP, _s.SIGUSR1, _s.SIGUSR2, _s.SIGQUIT):
            _s.signal(s, forward)
    try:
        if tty and stdin and os.isatty(0):
            with client.RawTerminal(0):
                code = client.relay(sock, stdin=True, tty=True)
        else:
            code = client.relay(sock, stdin=stdin, tty=tty)
    except client.Detached:
        sock.close()
        return 0  # docker: the container keeps running, the client exits 0
    sock.close()
    if code is None:
        code = engine.wait(rec).ExitCode
    return code


@click.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def run(ctx: CliContext, detach: bool, image: str, command: tuple, **kw):
    """Create and run a new container from an image."""
    from nsbox.runtime.errors import ContainerExit
    engine = _engine(ctx)
    image = _pulled(ctx, image, kw.pop("pull"))
    req = build_request(image, command, kw)
    rec, warnings, pid, sock = engine.run(req, attach=not detach)
    for w in warnings:
        warn(w)
    if detach:
        click.echo(rec.id)
        return
    raise ContainerExit(_relay(engine, rec, pid, sock, stdin=req.interactive, tty=req.tty))


@click.command(context_settings={"allow_interspersed_args": False})
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def create(ctx: CliContext, image: str, command: tuple, **kw):
    """Create a new container."""
    engine = _engine(ctx)
    image = _pulled(ctx, image, kw.pop("pull"))
    rec, warnings = engine.create(build_request(image, command, kw))
    for w in warnings:
        warn(w)
    click.echo(rec.id)


# --- lifecycle -------------------------------------------------------------

def _each(ctx: CliContext, refs, action, echo=True, removes=False) -> None:
    """docker's multi-container verbs: do each, report each failure, exit 1 if any failed.

    `action` returns what to print for the container, or None to print the ref itself. With
    `removes`, a ref that named a half-made record (swept by the lookup itself) is done.
    """
    from nsbox.runtime.errors import NsboxError, bounded
    from nsbox.runtime.store import HalfMadeSwept
    engine = _engine(ctx)
    failed = False
    for ref in refs:
        try:
            try:
                rec = engine.get(ref)
            except HalfMadeSwept:
                if not removes:
                    raise
                click.echo(ref)
                continue
            out = action(engine, rec)
            if echo:
                click.echo(ref if out is None else out)
        except NsboxError as e:
            click.echo(f"Error response from daemon: {bounded(str(e))}", err=True)
            failed = True
    if failed:
        sys.exit(1)


def _quiet(_result) -> None:
    """For _each: print the container's ref, not what the engine returned."""
    return None


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def start(ctx: CliContext, attach: bool, interactive: bool, containers: tuple):
    """Start one or more stopped containers."""
    from nsbox.runtime.errors import ContainerExit
    if attach or interactive:
        if len(containers) > 1:
            from nsbox.runtime.errors import InvalidArgument
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        engine = _engine(ctx)
        rec = engine.get(containers[0])
        tty = bool(rec.config()["Config"].get("Tty"))
        raise ContainerExit(_attach_and_start(engine, rec, stdin=interactive, tty=tty))
    _each(ctx, containers, lambda e, r: _quiet(e.start(r)))


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing it.")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def stop(ctx: CliContext, timeout, sig, containers):
    """Stop one or more running containers."""
    if sig:
        from nsbox.runtime.engine import parse_signal
        parse_signal(sig)
    _each(ctx, containers, lambda e, r: e.stop(r, timeout))


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing it.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def restart(ctx: CliContext, timeout, containers):
    """Restart one or more containers."""
    _each(ctx, containers, lambda e, r: _quiet(e.restart(r, timeout)))


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def kill(ctx: CliContext, sig, containers):
    """Kill one or more running containers."""
    from nsbox.runtime.engine import parse_signal
    n = parse_signal(sig)
    _each(ctx, containers, lambda e, r: e.kill(r, n))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def wait(ctx: CliContext, containers):
    """Block until one or more containers stop, then print their exit codes."""
    _each(ctx, containers, lambda e, r: e.wait(r).ExitCode)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def rm(ctx: CliContext, force, volumes, containers):
    """Remove one or more containers."""
    _each(ctx, containers, lambda e, r: e.rm(r, force=force, volumes=volumes), removes=True)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def pause(ctx: CliContext, containers):
    """Pause all processes within one or more containers."""
    _each(ctx, containers, lambda e, r: e.pause(r))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def unpause(ctx: CliContext, containers):
    """Unpause all processes within one or more containers."""
    _each(ctx, containers, lambda e, r: e.unpause(r))


@click.command()
@click.argument("container")
@click.argument("new_name")
@pass_cli
def rename(ctx: CliContext, container, new_name):
    """Rename a container."""
    engine = _engine(ctx)
    engine.rename(engine.get(container), new_name)


# --- looking ---------------------------------------------------------------

def _match_filter(f: str, rec, cfg, st, row) -> bool:
    from nsbox.runtime.errors import InvalidArgument
    key, eq, value = f.partition("=")
    if not eq:
        raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
    if key == "id":
        return rec.id.startswith(value)
    if key == "name":
        return value in cfg["Name"].lstrip("/")
    if key == "status":
        return st.Status == value
    if key == "label":
        k, _, v = value.partition("=")
        labels = cfg["Config"].get("Labels") or {}
        return k in labels and (not v or labels[k] == v)
    if key == "ancestor":
        return value in (cfg.get("ImageName"), cfg.get("Image")) or cfg.get("Image", "").startswith("sha256:" + value)
    if key == "exited":
        return st.Status == "exited" and str(st.ExitCode) == value
    if key == "pod":
        return cfg.get("Pod", "").startswith(value)
    if key == "network":
        return cfg["HostConfig"].get("NetworkMode") == value
    raise InvalidArgument(f"invalid filter '{key}'")


@click.command(name="ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", default=None, help="Format output using a Go template or 'json'.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("--pod", "show_pod", is_flag=True, help="Show the pod column.")
@pass_cli
def ps(ctx: CliContext, all_, quiet, no_trunc, filters, fmt, last, latest, show_pod):
    """List containers."""
    from nsbox.runtime.views import ps_row
    from nsbox.cli.format import render, table_headers
    engine = _engine(ctx)
    if latest:
        last = 1
    items = engine.list(all_ or last > 0 or bool(filters))
    if last > 0:
        items = items[:last]
    rows = []
    for rec, cfg, st in items:
        row = ps_row(rec, cfg, st, no_trunc)
        if all(_match_filter(f, rec, cfg, st, row) for f in filters):
            if show_pod and cfg.get("Pod"):
                row["PodName"] = _pod_name(ctx, cfg["Pod"])
            rows.append(row)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r))
        return
    if fmt:
        if fmt.startswith("table"):
            body = fmt[5:].strip()
            click.echo(table_headers(body))
            fmt = body
        for r in rows:
            click.echo(render(fmt, r))
        return
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if show_pod:
        headers += ["POD ID", "PODNAME"]
        keys += ["Pod", "PodName"]
    print_table(headers, [[r.get(k, "") for k in keys] for r in rows])


def _pod_name(ctx: CliContext, pod_id: str) -> str:
    try:
        from nsbox.runtime.pods import PodStore
        return PodStore(ctx.paths).get(pod_id).name
    except Exception:
        return ""


@click.command()
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go template.")
@click.option("--type", "kind", type=click.Choice(["container", "image", "volume", "network", "pod"]), default=None)
@click.option("-s", "--size", is_flag=True, help="Display total file sizes (accepted for compatibility).")
@click.argument("objects", nargs=-1, required=True)
@pass_cli
def inspect(ctx: CliContext, fmt, kind, size, objects):
    """Return low-level information on containers (and images)."""
    from nsbox.runtime.errors import NotFound
    from nsbox.runtime.views import inspect as view
    engine = _engine(ctx)
    out, missing = [], []
    for ref in objects:
        try:
            if kind in (None, "container"):
                rec = engine.get(ref)
                st = engine.state(rec)
                out.append(view(rec, rec.config(), st))
                continue
        except NotFound:
            if kind == "container":
                missing.append(ref)
                continue
        try:
            if kind in (None, "image"):
                from nsbox.image.store import ImageStore
                from nsbox.image import inspect_view
                out.append(inspect_view(ImageStore(ctx.paths), ref))
                continue
        except (NotFound, ImportError):
            pass
        try:
            if kind in (None, "pod"):  # podman's inspect also finds pods
                from nsbox.runtime.pods import PodStore, inspect_pod
                out.append(inspect_pod(ctx.paths, PodStore(ctx.paths).get(ref)))
                continue
        except NotFound:
            pass
        missing.append(ref)
    if fmt:
        from nsbox.cli.format import render
        for o in out:
            click.echo(render(fmt, o))
    else:
        click.echo(json.dumps(out, indent=4))
    if missing:
        for m in missing:
            click.echo(f"Error: No such object: {m}", err=True)
        sys.exit(1)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("--since", default=None, help="Show logs since timestamp (RFC3339 or unix) or relative (e.g. 42m).")
@click.option("--until", default=None, help="Show logs before a timestamp or relative.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
@pass_cli
def logs(ctx: CliContext, follow, tail, since, until, timestamps, container):
    """Fetch the logs of a container."""
    from nsbox.runtime.logview import show_logs
    engine = _engine(ctx)
    show_logs(engine, engine.get(container), follow=follow, tail=tail, since=since, until=until,
              timestamps=timestamps)


@click.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("-w", "--workdir", default="", help="Working directory inside the container.")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_cli
def exec_(ctx: CliContext, detach, interactive, tty, env, workdir, user, privileged, container, command):
    """Execute a command in a running container."""
    from nsbox.runtime import state as S
    from nsbox.runtime.errors import Conflict, ContainerExit
    from nsbox.runtime.execute import ExecRequest, exec_in, pty_relay
    from nsbox.runtime.client import terminal_size
    engine = _engine(ctx)
    rec = engine.get(container)
    st = engine.state(rec)
    if st.Status == S.PAUSED:
        raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
    if st.Status != S.RUNNING or not st.Pid:
        raise Conflict(f"Container {rec.id} is not running")
    cfg = rec.config()
    for e in env:
        from nsbox.runtime.specgen import parse_env_line
        parse_env_line(e)
    req = ExecRequest(args=list(command), env=list(env), workdir=workdir, user=user, tty=tty,
                      interactive=interactive, detach=detach, privileged=privileged,
                      console_size=terminal_size(0) if tty else None)
    code = exec_in(cfg, st.Pid, req, on_pty=pty_relay, runroot=engine.paths.runroot)
    raise ContainerExit(code)


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.argument("container")
@pass_cli
def attach(ctx: CliContext, no_stdin, sig_proxy, container):
    """Attach local standard input, output, and error streams to a running container."""
    from nsbox.runtime import client
    from nsbox.runtime import state as S
    from nsbox.runtime.errors import Conflict, ContainerExit
    engine = _engine(ctx)
    rec = engine.get(container)
    st = engine.state(rec)
    if st.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING):
        raise Conflict("You cannot attach to a stopped container, start it first")
    cfg = rec.config()
    tty = bool(cfg["Config"].get("Tty"))
    stdin = bool(cfg["Config"].get("OpenStdin")) and not no_stdin
    code = _relay(engine, rec, st.Pid, client.connect(rec.attach_path), stdin, tty, proxy_signals=sig_proxy)
    raise ContainerExit(code)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def top(ctx: CliContext, container, ps_args):
    """Display the running processes of a container."""
    from nsbox.runtime.procs import top as do_top
    engine = _engine(ctx)
    headers, rows = do_top(engine, engine.get(container), list(ps_args))
    print_table(headers, rows)


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.argument("src")
@click.argument("dest")
@pass_cli
def cp(ctx: CliContext, archive, follow_link, src, dest):
    """Copy files/folders between a container and the local filesystem."""
    from nsbox.cli.common import warn
    from nsbox.runtime.copy import copy
    skipped = copy(_engine(ctx), src, dest, follow_link=follow_link, archive=archive)
    if skipped:
        warn(f"not copied: {len(skipped)} device node(s) or socket(s) ({', '.join(skipped[:3])}"
             f"{', ...' if len(skipped) > 3 else ''})")


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
@pass_cli
def port(ctx: CliContext, container, private_port):
    """List port mappings or a specific mapping for the container."""
    from nsbox.runtime.errors import NotFound
    engine = _engine(ctx)
    rec = engine.get(container)
    st = engine.state(rec)
    ports = (st.Network or {}).get("Ports", {})
    if private_port:
        key = private_port if "/" in private_port else f"{private_port}/tcp"
        binds = ports.get(key)
        if not binds:
            raise NotFound(f"No public port '{key}' published for {container}")
        for b in binds:
            click.echo(f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}")
        return
    for cport, binds in sorted(ports.items()):
        for b in binds or []:
            click.echo(f"{cport} -> {b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}")


@click.group()
def container():
    """Manage containers."""


@container.command(name="prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_cli
def container_prune(ctx: CliContext, force):
    """Remove all stopped containers."""
    removed = _engine(ctx).prune()
    click.echo("Deleted Containers:" if removed else "", nl=bool(removed))
    for cid in removed:
        click.echo(cid)
    click.echo("\nTotal reclaimed space: 0B")


for _name, _cmd in [("run", run), ("create", create), ("start", start), ("stop", stop), ("restart", restart),
                    ("kill", kill), ("wait", wait), ("rm", rm), ("pause", pause), ("unpause", unpause),
                    ("rename", rename), ("ls", ps), ("ps", ps), ("list", ps), ("inspect", inspect), ("logs", logs),
                    ("exec", exec_), ("attach", attach), ("top", top), ("cp", cp), ("port", port)]:
    container.add_command(_cmd, name=_name)
