"""`nsbox pod ...`: parse flags, call runtime/pods.py, format. No logic here."""
from __future__ import annotations

import json
import sys

import click

from nsbox.cli.common import CliContext, pass_cli, print_table, warn


def _store(ctx: CliContext):
    from nsbox.runtime.pods import PodStore
    return PodStore(ctx.paths)


def _each(ctx: CliContext, refs, all_: bool, action) -> None:
    """podman's multi-pod verbs: do each, report each failure, exit 125 if any failed."""
    from nsbox.runtime.errors import InvalidArgument, NsboxError, bounded
    store = _store(ctx)
    if all_ and refs:
        raise InvalidArgument("--all and pod names cannot be used together")
    if not all_ and not refs:
        raise InvalidArgument("you must provide at least one pod name or id")
    pods = store.all() if all_ else []
    failed = False
    if not all_:
        for ref in refs:
            try:
                pods.append(store.get(ref))
            except NsboxError as e:
                click.echo(f"Error: {bounded(str(e))}", err=True)
                failed = True
    for pod in pods:
        try:
            action(pod)
            click.echo(pod.id)
        except NsboxError as e:
            click.echo(f"Error: {bounded(f'{pod.name}: {e}')}", err=True)
            failed = True
    if failed:
        sys.exit(125)


@click.group()
def pod():
    """Manage pods."""


@pod.command()
@click.option("--name", default="", help="Assign a name to the pod.")
@click.option("-p", "--publish", multiple=True, help="Publish a port of the pod to the host.")
@click.option("--share", default=None, help="Namespaces to share: ipc, net, uts, pid (default ipc,net,uts).")
@click.option("--hostname", default="", help="The pod's hostname (default: its name).")
@click.option("--infra-image", default="", help="Image of the infra container (default localhost/nsbox-pause).")
@click.option("-l", "--label", "labels", multiple=True, help="Set metadata on the pod.")
@click.option("--cpus", default=None, help="CPUs for the whole pod.")
@click.option("-m", "--memory", default=None, help="Memory limit for the whole pod.")
@click.option("--network", default="", help="Network of the pod (default bridge).")
@click.option("--userns", default=None, help="User namespace of the infra container: host or auto[:size=N].")
@pass_cli
def create(ctx: CliContext, name, publish, share, hostname, infra_image, labels, cpus, memory, network, userns):
    """Create a new empty pod (and its infra container)."""
    from nsbox.runtime.pods import PodCreateOptions, create_pod
    p, warnings = create_pod(ctx.paths, PodCreateOptions(
        name=name, publish=list(publish), share=share, hostname=hostname, infra_image=infra_image,
        labels=list(labels), cpus=cpus, memory=memory, network=network, userns=userns))
    for w in warnings:
        warn(w)
    click.echo(p.id)


@pod.command(name="ps")
@click.option("-q", "--quiet", is_flag=True, help="Print only pod IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs.")
@click.option("--format", "fmt", default=None, help="Go template or 'json'.")
@pass_cli
def ps(ctx: CliContext, quiet, no_trunc, fmt):
    """List pods."""
    from nsbox.cli.format import render, table_headers
    from nsbox.runtime.fsutil import parse_iso
    from nsbox.runtime.pods import list_rows
    rows = list_rows(ctx.paths, no_trunc)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if fmt:
        if fmt.startswith("table"):
            fmt = fmt[5:].strip()
            click.echo(table_headers(fmt))
        for r in rows:
            click.echo(render(fmt, r))
        return
    import time
    from nsbox.runtime.views import human_duration
    print_table(["POD ID", "NAME", "STATUS", "CREATED", "INFRA ID", "# OF CONTAINERS"],
                [[r["ID"], r["Name"], r["Status"], f"{human_duration(time.time() - parse_iso(r['Created']))} ago",
                  r["InfraID"], r["NumberOfContainers"]] for r in rows])


pod.add_command(ps, name="ls")


@pod.command()
@click.option("-f", "--format", "fmt", default=None, help="Go template.")
@click.argument("pods", nargs=-1, required=True)
@pass_cli
def inspect(ctx: CliContext, fmt, pods):
    """Display a pod's configuration and state."""
    from nsbox.runtime.errors import NotFound
    from nsbox.runtime.pods import inspect_pod
    store = _store(ctx)
    out = [inspect_pod(ctx.paths, store.get(ref)) for ref in pods]
    if fmt:
        from nsbox.cli.format import render
        for o in out:
            click.echo(render(fmt, o))
        return
    if not out:
        raise NotFound("no such pod")
    click.echo(json.dumps(out, indent=4))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Start all pods.")
@click.argument("pods", nargs=-1)
@pass_cli
def start(ctx: CliContext, all_, pods):
    """Start one or more pods."""
    from nsbox.runtime.pods import start_pod
    _each(ctx, pods, all_, lambda p: start_pod(ctx.paths, p))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Stop all pods.")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing.")
@click.argument("pods", nargs=-1)
@pass_cli
def stop(ctx: CliContext, all_, timeout, pods):
    """Stop one or more pods."""
    from nsbox.runtime.pods import stop_pod
    _each(ctx, pods, all_, lambda p: stop_pod(ctx.paths, p, timeout))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Restart all pods.")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing.")
@click.argument("pods", nargs=-1)
@pass_cli
def restart(ctx: CliContext, all_, timeout, pods):
    """Restart one or more pods."""
    from nsbox.runtime.pods import start_pod, stop_pod

    def go(p):
        stop_pod(ctx.paths, p, timeout)
        start_pod(ctx.paths, p)
    _each(ctx, pods, all_, go)


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Kill all pods.")
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send.")
@click.argument("pods", nargs=-1)
@pass_cli
def kill(ctx: CliContext, all_, sig, pods):
    """Send a signal to the containers of one or more pods."""
    from nsbox.runtime.engine import parse_signal
    from nsbox.runtime.pods import kill_pod
    n = parse_signal(sig)
    _each(ctx, pods, all_, lambda p: kill_pod(ctx.paths, p, n))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Pause all pods.")
@click.argument("pods", nargs=-1)
@pass_cli
def pause(ctx: CliContext, all_, pods):
    """Pause the containers of one or more pods."""
    from nsbox.runtime.pods import pause_pod
    _each(ctx, pods, all_, lambda p: pause_pod(ctx.paths, p, True))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Unpause all pods.")
@click.argument("pods", nargs=-1)
@pass_cli
def unpause(ctx: CliContext, all_, pods):
    """Unpause the containers of one or more pods."""
    from nsbox.runtime.pods import pause_pod
    _each(ctx, pods, all_, lambda p: pause_pod(ctx.paths, p, False))


@pod.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all pods.")
@click.option("-f", "--force", is_flag=True, help="Stop and remove running pods and their containers.")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing (with -f).")
@click.argument("pods", nargs=-1)
@pass_cli
def rm(ctx: CliContext, all_, force, timeout, pods):
    """Remove one or more pods, their containers and infra."""
    from nsbox.runtime.pods import remove_pod
    if all_ and not pods and not _store(ctx).all():
        return
    _each(ctx, pods, all_, lambda p: remove_pod(ctx.paths, p, force=force, timeout=timeout))


@pod.command()
@click.argument("pod_ref", metavar="POD")
@click.argument("ps_args", nargs=-1)
@pass_cli
def top(ctx: CliContext, pod_ref, ps_args):
    """Display the running processes of a pod's containers."""
    from nsbox.runtime.pods import top_pod
    headers, rows = top_pod(ctx.paths, _store(ctx).get(pod_ref), list(ps_args))
    print_table(headers, rows)


@pod.command()
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation (accepted).")
@pass_cli
def prune(ctx: CliContext, force):
    """Remove all stopped pods and their containers."""
    from nsbox.runtime.pods import prune_pods
    for pid in prune_pods(ctx.paths):
        click.echo(pid)
