"""Reading a json-file log and its rotated files, and following it across rotations.

The writer (logs.JsonFileWriter) rotates by renaming: path -> path.1 -> ... -> path.<max-file - 1>
(the oldest is overwritten), or with max-file=1 by unlinking path; it closes the old file before the
renames and then creates a new path. A reader therefore holds the file it is reading open: a
rotation cannot take it away, renamed or deleted. When `path` names another inode, nothing more
will be written to the held file: the reader reads it to its end and goes on with the file that
came after it, found by inode among the files on disk.

The guarantee: a follower misses and repeats nothing while it is fewer than max-file rotations
behind the writer (the next file it needs is still on disk). Further behind, the files that were
rotated out of existence while it read an older one are lost, and it goes on with the oldest file
still on disk; docker's follower loses data then too.
"""
from __future__ import annotations

import json
import os

CHUNK = 1 << 20


def _open(p: str) -> tuple[int, int] | None:
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    return fd, os.fstat(fd).st_ino


def _close(files) -> None:
    for fd, _ in files:
        os.close(fd)


def open_log_files(path: str, tries: int = 50) -> list[tuple[int, int]]:
    """(fd, inode) of path.N ... path.1, path: oldest first, as one consistent set.

    A rotation in the middle of the scan shifts the names; it also changes what `path` names, so
    the scan is taken again when that happened (bounded: the writer does not rotate that often).
    """
    files: list[tuple[int, int]] = []
    for _ in range(tries):
        head = _open(path)
        older = []
        i = 1
        while (f := _open(f"{path}.{i}")) is not None:
            older.append(f)
            i += 1
        try:
            now = os.stat(path).st_ino
        except FileNotFoundError:
            now = None
        files = list(reversed(older)) + ([head] if head is not None else [])
        if (head is None and now is None) or (head is not None and now == head[1]):
            return files
        _close(files)
        files = []
    return files


class LogReader:
    """records() reads what is there, oldest first; poll() then returns what came since."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None   # the file being read, held open across rotations
        self.ino = 0
        self.buf = b""               # the start of a line still being written

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _drain(self, out: list[dict]) -> bool:
        """Read the held file to its current end; whole lines become records. True if it grew."""
        grew = False
        while True:
            chunk = os.read(self.fd, CHUNK)
            if not chunk:
                return grew
            grew = True
            *lines, self.buf = (self.buf + chunk).split(b"\n")
            for line in lines:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a record torn by a full disk

    def _switch(self, fd: int, ino: int) -> None:
        self.close()
        self.fd, self.ino, self.buf = fd, ino, b""

    def records(self) -> list[dict]:
        out: list[dict] = []
        files = open_log_files(self.path)
        for fd, ino in files:
            self._switch(fd, ino)
            self._drain(out)
        return out

    def poll(self) -> list[dict]:
        out: list[dict] = []
        while True:
            if self.fd is not None and self._drain(out):
                continue
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                return out  # mid-rotation (or removed): look again later
            if self.fd is not None and current == self.ino:
                return out
            # the writer has moved on: it closed our file before the rename, so this read is its last
            if self.fd is not None:
                self._drain(out)
            if not self._next_file():
                return out

    def _next_file(self) -> bool:
        files = open_log_files(self.path)
        inos = [ino for _, ino in files]
        # ours is on disk: the one after it; else ours was rotated out: the oldest left (see above)
        after = files[inos.index(self.ino) + 1:] if self.fd is not None and self.ino in inos else files
        if not after:
            _close(files)
            return False
        nxt = after[0]
        _close([f for f in files if f is not nxt])
        self._switch(*nxt)
        return True
