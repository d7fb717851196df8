"""`nsbox network ...`: create, ls, inspect, rm, prune, connect, disconnect (flags and output only)."""
from __future__ import annotations

import json

import click

from nsbox.cli.common import CliContext, pass_cli, print_table
from nsbox.runtime.errors import Conflict, InvalidArgument


def _labels(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {it!r}")
        out[k] = v
    return out


def _inspect(paths, cfg) -> dict:
    from nsbox.network import api
    ctrs = {}
    for ip, rec in api.network_endpoints(paths, cfg).items():
        st = api.load_status(paths, rec["cid"])
        ep = st.Networks.get(cfg.name) if st else None
        ctrs[rec["cid"]] = {"Name": rec.get("name", ""), "EndpointID": ep.EndpointID if ep else "",
                            "MacAddress": ep.MacAddress if ep else "", "IPv4Address": f"{ip}/{cfg.prefixlen}",
                            "IPv6Address": ""}
    return {"Name": cfg.name, "Id": cfg.id, "Created": cfg.created, "Scope": "local", "Driver": cfg.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": cfg.subnet, "Gateway": cfg.gateway}]},
            "Internal": cfg.internal, "Attachable": False, "Ingress": False, "ConfigOnly": False,
            "Containers": ctrs, "Options": {"com.docker.network.bridge.name": cfg.bridge}, "Labels": cfg.labels}


@click.group()
def network() -> None:
    """Manage networks."""


@network.command()
@click.option("--subnet", default=None, help="Subnet in CIDR format (default: a free one)")
@click.option("--gateway", default=None, help="IPv4 gateway (default: first address of the subnet)")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--label", multiple=True, help="Set metadata on a network (k=v)")
@click.option("-d", "--driver", default="bridge", help="Driver (only bridge)")
@click.argument("name")
@pass_cli
def create(ctx: CliContext, subnet, gateway, internal, label, driver, name) -> None:
    """Create a network."""
    if driver != "bridge":
        raise InvalidArgument(f"network driver {driver!r} is not supported (only bridge)")
    from nsbox.network.config import create_network
    cfg = create_network(ctx.paths, name, subnet, gateway, internal, _labels(label))
    click.echo(cfg.id)


@network.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@pass_cli
def ls(ctx: CliContext, quiet, no_trunc) -> None:
    """List networks."""
    from nsbox.network.config import list_networks
    nets = list_networks(ctx.paths)
    ids = [c.id if no_trunc else c.id[:12] for c in nets]
    if quiet:
        for i in ids:
            click.echo(i)
        return
    print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], [[i, c.name, c.driver, "local"] for i, c in zip(ids, nets)])


@network.command()
@click.argument("names", nargs=-1, required=True)
@pass_cli
def inspect(ctx: CliContext, names) -> None:
    """Display detailed information on one or more networks."""
    from nsbox.network.config import get_network
    click.echo(json.dumps([_inspect(ctx.paths, get_network(ctx.paths, n)) for n in names], indent=4))


@network.command(name="rm")
@click.argument("names", nargs=-1, required=True)
@pass_cli
def rm(ctx: CliContext, names) -> None:
    """Remove one or more networks."""
    from nsbox.network.api import remove_network
    errors = []
    for n in names:
        try:
            remove_network(ctx.paths, n)
            click.echo(n)
        except Exception as e:  # docker removes the others and reports each failure
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else Conflict("; ".join(str(e) for e in errors))


@network.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_cli
def prune(ctx: CliContext, force) -> None:
    """Remove all unused networks."""
    if not force and not click.confirm("WARNING! This will remove all custom networks not used by at least one "
                                       "container.\nAre you sure you want to continue?", default=False):
        return
    from nsbox.network.api import prune_networks
    removed = prune_networks(ctx.paths)
    if removed:
        click.echo("Deleted Networks:")
        for n in removed:
            click.echo(n)


def _running(paths, ref: str):
    """(record, state) of a running container with a netns nsbox made."""
    from nsbox.runtime.store import ContainerStore
    rec = ContainerStore(paths).get(ref)
    st = rec.load_state()
    if not st.running or not st.Pid:
        raise Conflict(f"container {rec.id[:12]} is not running")
    if not st.NetNS:
        raise Conflict(f"container {rec.id[:12]} does not use a bridge network namespace of its own")
    return rec, st


def _save_network_state(rec, paths) -> None:
    from nsbox.network.api import load_status
    with rec.lock():
        st = rec.load_state()
        ns = load_status(paths, rec.id)
        st.Network = ns.to_dict() if ns else {}
        rec.save_state(st)


@network.command()
@click.option("--ip", default=None, help="IPv4 address")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.argument("net")
@click.argument("container")
@pass_cli
def connect(ctx: CliContext, ip, alias, net, container) -> None:
    """Connect a container to a network."""
    from nsbox.network.api import connect as do_connect
    rec, st = _running(ctx.paths, container)
    name = (rec.config().get("Name") or "").lstrip("/")
    do_connect(ctx.paths, rec.id, st.NetNS, net, ip, list(alias), name)
    _save_network_state(rec, ctx.paths)


@network.command()
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("net")
@click.argument("container")
@pass_cli
def disconnect(ctx: CliContext, force, net, container) -> None:
    """Disconnect a container from a network."""
    from nsbox.network.api import disconnect as do_disconnect
    rec, st = _running(ctx.paths, container)
    do_disconnect(ctx.paths, rec.id, st.NetNS, net)
    _save_network_state(rec, ctx.paths)
