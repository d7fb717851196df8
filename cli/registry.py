"""Registry verbs: pull, push, login, logout. Parsing and formatting only; the work is in nsbox.image.registry."""
from __future__ import annotations

import sys

import click

from nsbox.cli.common import pass_cli


class _Cmd(click.Command):
    """Go-style boolean flag: a bare `--tls-verify` means true and never eats the next argument."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, ["--tls-verify=true" if a == "--tls-verify" else a for a in args])


def _tls_options(f):
    f = click.option("--cert-dir", default=None, type=click.Path(file_okay=False),
                     help="Use certificates (*.crt CAs, *.cert/*.key client pairs) from this directory.")(f)
    # --tls-verify alone means true; --tls-verify=false allows plain HTTP / unverified TLS
    f = click.option("--tls-verify", type=click.BOOL, default=None,
                     help="Require HTTPS and verify certificates (default: true except for loopback registries).")(f)
    return f


@click.command(cls=_Cmd)
@click.option("--platform", default=None, help="Pull for this platform: os/arch[/variant] (default linux/<host arch>).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("-a", "--all-tags", is_flag=True, hidden=True)
@_tls_options
@click.argument("name")
@pass_cli
def pull(ctx, platform, quiet, all_tags, tls_verify, cert_dir, name):
    """Download an image from a registry."""
    from nsbox.image.registry.pull import PullOptions, pull as do_pull
    from nsbox.runtime.errors import InvalidArgument
    if all_tags:
        raise InvalidArgument("--all-tags is not supported")
    do_pull(ctx.paths, name, PullOptions(platform=platform, quiet=quiet, tls_verify=tls_verify, cert_dir=cert_dir,
                                         out=sys.stdout, print_name=True))


@click.command(cls=_Cmd)
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@_tls_options
@click.argument("name")
@pass_cli
def push(ctx, quiet, tls_verify, cert_dir, name):
    """Upload an image to a registry."""
    from nsbox.image.registry.push import PushOptions, push as do_push
    do_push(ctx.paths, name, PushOptions(quiet=quiet, tls_verify=tls_verify, cert_dir=cert_dir, out=sys.stdout))


@click.command(cls=_Cmd)
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@_tls_options
@click.argument("server", required=False)
@pass_cli
def login(ctx, username, password, password_stdin, tls_verify, cert_dir, server):
    """Log in to a registry (credentials go to <root>/auth.json, mode 0600)."""
    from nsbox.image.registry.login import login as do_login
    from nsbox.runtime.errors import InvalidArgument
    if password and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True) \
            if not password_stdin else None
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    do_login(ctx.paths, server or "docker.io", username, password, tls_verify=tls_verify, cert_dir=cert_dir)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
@pass_cli
def logout(ctx, server):
    """Log out from a registry."""
    from nsbox.image.registry.login import logout as do_logout
    server = server or "docker.io"
    if do_logout(ctx.paths, server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")
