"""`nsbox update` and `nsbox stats`: flags in, text out; the logic is runtime/resources_ops.py."""
from __future__ import annotations

import json
import re
import sys

import click

from nsbox.cli.common import CliContext, pass_cli, print_table, warn

STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}")


def _engine(ctx: CliContext):
    from nsbox.runtime.engine import Engine
    return Engine(ctx.paths)


@click.command(context_settings={"allow_interspersed_args": True})
@click.option("-m", "--memory", default=None, help="Memory limit.")
@click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 for unlimited.")
@click.option("--memory-reservation", default=None, help="Memory soft limit.")
@click.option("--cpus", default=None, help="Number of CPUs.")
@click.option("-c", "--cpu-shares", default=None, help="CPU shares (relative weight).")
@click.option("--cpu-period", default=None, help="Limit CPU CFS period.")
@click.option("--cpu-quota", default=None, help="Limit CPU CFS quota.")
@click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1).")
@click.option("--blkio-weight", default=None, help="Block IO (relative weight), between 10 and 1000, or 0 to disable.")
@click.option("--pids-limit", default=None, help="Tune container pids limit (-1 for unlimited).")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits.")
@click.argument("containers", nargs=-1, required=True)
@pass_cli
def update(ctx: CliContext, restart, containers, **flags):
    """Update configuration of one or more containers."""
    from nsbox.runtime.errors import NsboxError, bounded
    from nsbox.runtime.resources_ops import UpdateRequest, update_container, validate_update
    req = UpdateRequest(flags={k: v for k, v in flags.items() if v is not None}, restart=restart)
    validate_update(req)  # bad values: one line, exit 125, no container touched
    engine = _engine(ctx)
    errors = []
    for ref in containers:
        try:
            res = update_container(engine.get(ref), req)
        except NsboxError as e:
            errors.append(str(e))
            continue
        except OSError as e:  # the kernel refused a value (e.g. a limit below current usage)
            errors.append(f"Cannot update container {ref}: {e}")
            continue
        for w in res.warnings:
            warn(w)
        click.echo(ref)
    if errors:
        for e in errors:
            click.echo(f"Error response from daemon: {bounded(str(e))}", err=True)
        sys.exit(1)


def _headers(template: str) -> str:
    return _ACTION.sub(lambda m: STATS_HEADERS.get(m.group(1).lstrip("."), m.group(1).lstrip(".").upper()),
                       template.replace("\\t", "\t"))


def _render_frame(rows, fmt: str | None) -> str:
    from nsbox.cli.format import render
    if fmt == "json":
        return "".join(json.dumps(r.to_dict()) + "\n" for r in rows)
    tmpl = fmt or STATS_TABLE
    if tmpl.startswith("table"):
        body = tmpl[5:].strip()
        import io
        out = io.StringIO()
        # docker aligns table cells like a tabwriter: split on the tabs the template produces
        print_table(_headers(body).split("\t"), [render(body, r.to_dict()).split("\t") for r in rows], out)
        return out.getvalue()
    return "".join(render(tmpl, r.to_dict()) + "\n" for r in rows)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "fmt", default=None, help="Format output using a Go template or 'json'.")
@click.argument("containers", nargs=-1)
@pass_cli
def stats(ctx: CliContext, all_, no_stream, no_trunc, fmt, containers):
    """Display a live stream of container(s) resource usage statistics."""
    from nsbox.runtime.resources_ops import StatsCollector, stats_frames
    collector = StatsCollector(_engine(ctx), list(containers), all_=all_, no_trunc=no_trunc)
    collector.resolve()  # a named container that does not exist: error before any output
    tty = sys.stdout.isatty()
    try:
        for rows in stats_frames(collector, stream=not no_stream):
            text = _render_frame(rows, fmt)
            if not no_stream and tty:
                text = "\033[2J\033[H" + text   # docker: clear the screen, redraw from the top
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends streaming normally
