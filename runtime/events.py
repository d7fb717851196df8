"""The root's events log: one JSON line per event (docker events' shape), bounded by size.

docker keeps events for a bounded window; so does this: the writer whose append takes events.log
past MAX_BYTES renames it to events.log.1 (replacing the generation before), so the two files hold
between MAX_BYTES and twice that. Rotation takes a lock and checks the size again under it, so two
writers never rotate twice in a row; an append racing the rename lands in events.log.1, not lost.
Readers take events.log.1, then events.log (read()).
"""
from __future__ import annotations

import json
import os

MAX_BYTES = 1 << 20   # ~1,600 containers' start and die


def log_path(root: str) -> str:
    return os.path.join(root, "events.log")


def append(root: str, event: dict, max_bytes: int = MAX_BYTES) -> None:
    """Best effort: an event that cannot be written (full disk) is dropped, never an error."""
    path = log_path(root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, json.dumps(event).encode() + b"\n")  # one O_APPEND write: lines never interleave
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > max_bytes:
            _rotate(path, max_bytes)
    except OSError:
        pass


def _rotate(path: str, max_bytes: int) -> None:
    import fcntl
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another writer is rotating right now
        try:
            if os.stat(path).st_size > max_bytes:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
    finally:
        os.close(fd)


def read(root: str) -> list[dict]:
    """Every event still kept, oldest first."""
    path = log_path(root)
    for _ in range(50):
        cur = _open(path)
        old = _open(path + ".1")
        if cur is not None and old is not None and os.fstat(cur).st_ino == os.fstat(old).st_ino:
            os.close(cur)
            os.close(old)  # rotated between the two opens: take both again
            continue
        break
    out: list[dict] = []
    for fd in (old, cur):
        if fd is None:
            continue
        with os.fdopen(fd, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _open(p: str) -> int | None:
    try:
        return os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
