"""Per-layer progress: rich bars on a terminal, docker's plain status lines otherwise, nothing when quiet."""
from __future__ import annotations

import sys
import threading


class Task:
    def __init__(self, owner: "Progress", key: str, total: int, rich_id=None):
        self.owner, self.key, self.total, self.rich_id = owner, key, total, rich_id

    def advance(self, n: int) -> None:
        if self.rich_id is not None:
            self.owner._bar.update(self.rich_id, advance=n)

    def status(self, status: str, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if self.rich_id is not None:
            self.owner._bar.update(self.rich_id, description=f"{self.key}: {status}", total=self.total or None)

    def done(self, status: str) -> None:
        if self.rich_id is not None:
            self.owner._bar.update(self.rich_id, description=f"{self.key}: {status}",
                                   total=self.total or 1, completed=self.total or 1)
        else:
            self.owner.line(f"{self.key}: {status}")


class Progress:
    def __init__(self, quiet: bool = False, out=None):
        self.quiet = quiet
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._bar = None

    def __enter__(self) -> "Progress":
        if not self.quiet and getattr(self.out, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, TextColumn
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     console=Console(file=self.out), transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def line(self, msg: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._bar is not None:
                self._bar.console.print(msg, markup=False, highlight=False, soft_wrap=True)
            else:
                print(msg, file=self.out, flush=True)

    def task(self, key: str, total: int, verb: str) -> Task:
        if self._bar is not None:
            return Task(self, key, total, self._bar.add_task(f"{key}: {verb}", total=total or None))
        return Task(self, key, total)
