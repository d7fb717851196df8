"""What every CLI module shares: the context object and small output helpers."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from nsbox.runtime.paths import Paths


@dataclass
class CliContext:
    paths: Paths
    debug: bool = False


pass_cli = click.make_pass_decorator(CliContext)


def warn(msg: str) -> None:
    click.echo(f"WARNING: {msg}", err=True)


def print_table(headers: list[str], rows: list[list[str]], out=None) -> None:
    """Docker's plain column layout: left-aligned, at least three spaces apart."""
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in [headers] + rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        out.write("   ".join(cells).rstrip() + "\n")
