"""`volume create/ls/rm/inspect/prune`."""
from __future__ import annotations

import json
import sys

import click

from nsbox.cli.common import CliContext, pass_cli, print_table


def _store(ctx: CliContext):
    from nsbox.runtime.volumes import VolumeStore
    return VolumeStore(ctx.paths)


@click.group()
def volume():
    """Manage volumes."""


@volume.command()
@click.option("-l", "--label", multiple=True)
@click.option("-d", "--driver", default="local")
@click.argument("name", required=False, default="")
@pass_cli
def create(ctx: CliContext, label, driver, name):
    """Create a volume."""
    from nsbox.runtime.errors import InvalidArgument
    from nsbox.runtime.specgen import parse_labels
    if driver != "local":
        raise InvalidArgument(f"volume driver {driver} is not supported (only local)")
    click.echo(_store(ctx).create(name, parse_labels(list(label))).Name)


@volume.command(name="ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--format", "fmt", default=None)
@pass_cli
def ls(ctx: CliContext, quiet, fmt):
    """List volumes."""
    vols = _store(ctx).list()
    if quiet:
        for v in vols:
            click.echo(v.Name)
        return
    if fmt:
        from nsbox.cli.format import render
        for v in vols:
            click.echo(json.dumps(v.__dict__) if fmt == "json" else render(fmt, v.__dict__))
        return
    print_table(["DRIVER", "VOLUME NAME"], [[v.Driver, v.Name] for v in vols])


@volume.command()
@click.option("-f", "--format", "fmt", default=None)
@click.argument("names", nargs=-1, required=True)
@pass_cli
def inspect(ctx: CliContext, fmt, names):
    """Display detailed information on one or more volumes."""
    store = _store(ctx)
    out = []
    for n in names:
        v = store.get(n).__dict__
        out.append({k: v[k] for k in v if k != "Anonymous"})
    if fmt:
        from nsbox.cli.format import render
        for o in out:
            click.echo(render(fmt, o))
    else:
        click.echo(json.dumps(out, indent=4))


@volume.command()
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
@pass_cli
def rm(ctx: CliContext, force, names):
    """Remove one or more volumes."""
    from nsbox.runtime.errors import NsboxError
    failed = False
    for n in names:
        try:
            _store(ctx).remove(n, force)
            click.echo(n)
        except NsboxError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@volume.command()
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("-f", "--force", is_flag=True)
@pass_cli
def prune(ctx: CliContext, all_, force):
    """Remove unused local volumes."""
    removed = _store(ctx).prune(all_)
    if removed:
        click.echo("Deleted Volumes:")
        for n in removed:
            click.echo(n)
    click.echo("\nTotal reclaimed space: 0B")
