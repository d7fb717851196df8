"""nsbox's command line: global options, lazily loaded verbs, and the one place errors become exit codes.

Subcommands are imported only when invoked, so `nsbox run` never pays for network,
build or registry code.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from nsbox.cli.common import CliContext
from nsbox.runtime import __version__
from nsbox.runtime.paths import Paths

# verb -> "module:attribute". One module per noun (podman's cmd/podman/<noun>/).
COMMANDS = {
    # containers (cli/container.py)
    "run": "nsbox.cli.container:run", "create": "nsbox.cli.container:create",
    "start": "nsbox.cli.container:start", "stop": "nsbox.cli.container:stop",
    "restart": "nsbox.cli.container:restart", "kill": "nsbox.cli.container:kill",
    "wait": "nsbox.cli.container:wait", "rm": "nsbox.cli.container:rm",
    "pause": "nsbox.cli.container:pause", "unpause": "nsbox.cli.container:unpause",
    "rename": "nsbox.cli.container:rename", "ps": "nsbox.cli.container:ps",
    "inspect": "nsbox.cli.container:inspect", "logs": "nsbox.cli.container:logs",
    "exec": "nsbox.cli.container:exec_", "attach": "nsbox.cli.container:attach",
    "top": "nsbox.cli.container:top", "cp": "nsbox.cli.container:cp",
    "port": "nsbox.cli.container:port", "container": "nsbox.cli.container:container",
    # resources (cli/resources.py)
    "update": "nsbox.cli.resources:update", "stats": "nsbox.cli.resources:stats",
    # volumes (cli/volume.py)
    "volume": "nsbox.cli.volume:volume",
    # images (cli/image.py)
    "images": "nsbox.cli.image:images", "image": "nsbox.cli.image:image",
    "import": "nsbox.cli.image:import_", "tag": "nsbox.cli.image:tag", "rmi": "nsbox.cli.image:rmi",
    "save": "nsbox.cli.image:save", "load": "nsbox.cli.image:load", "history": "nsbox.cli.image:history",
    "commit": "nsbox.cli.image:commit", "export": "nsbox.cli.image:export",
    # build (cli/build.py), registry (cli/registry.py)
    "build": "nsbox.cli.build:build",
    "pull": "nsbox.cli.registry:pull", "push": "nsbox.cli.registry:push",
    "login": "nsbox.cli.registry:login", "logout": "nsbox.cli.registry:logout",
    # networks (cli/network.py), pods (cli/pod.py)
    "network": "nsbox.cli.network:network", "pod": "nsbox.cli.pod:pod",
    # system (cli/system.py)
    "version": "nsbox.cli.system:version", "info": "nsbox.cli.system:info",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None  # verb planned but not built yet
            raise
        return getattr(mod, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="NSBOX_ROOT", default=None, help="Persistent state and image store (default /var/lib/nsbox).")
@click.option("--runroot", envvar="NSBOX_RUNROOT", default=None, help="Runtime state (default /run/nsbox).")
@click.option("--debug", is_flag=True, hidden=True)
@click.version_option(__version__, "-v", "--version", prog_name="nsbox", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, runroot: str | None, debug: bool) -> None:
    """nsbox: run containers the way docker does."""
    ctx.obj = CliContext(paths=Paths.from_env(root, runroot), debug=debug)


def run(argv: list[str] | None = None) -> int:
    """One command; returns its exit code. The only place errors become exit codes."""
    from nsbox.runtime.errors import ContainerExit, NsboxError, bounded

    try:
        cli.main(args=argv, prog_name="nsbox", standalone_mode=False)
    except ContainerExit as e:
        return e.code if e.code >= 0 else 255
    except NsboxError as e:
        click.echo(f"Error: {bounded(str(e))}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except click.exceptions.NoArgsIsHelpError as e:
        # bare `nsbox` (or a bare group): the help, and success, as docker does
        click.echo(e.ctx.get_help() if e.ctx else e.format_message())
        return 0
    except click.ClickException as e:
        # bad flags and usage: docker answers 125
        click.echo(f"Error: {bounded(e.format_message())}", err=True)
        return 125
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if os.environ.get("NSBOX_DEBUG"):
            raise
        from nsbox.runtime.fsutil import disk_full, no_space
        click.echo(f"Error: {bounded(no_space(e, []) if disk_full(e) else str(e))}", err=True)
        return 125
    except SystemExit as e:  # click's --help/--version, a verb's own sys.exit
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def flush_stdio() -> bool:
    """False when the reader went away (a closed pipe): then exit without another flush."""
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            ok = False
    return ok


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    if not flush_stdio():
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
