"""Safe cgroupfs file access.

Every write goes through os.open/os.write so the kernel's error reaches us (landmines 6.3: a
buffered Python write can defer ENODEV/EINVAL to close() and garbage collection swallows it).
"""
from __future__ import annotations

import errno
import os

from nsbox.runtime.errors import NsboxError

# errnos meaning "this kernel/device cannot do that knob" -> a warning, not a failure
UNSUPPORTED_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT})


class CgroupError(NsboxError):
    """A cgroup operation failed (message names the file and the value)."""

    def __init__(self, msg: str, err: int | None = None):
        super().__init__(msg)
        self.errno = err


def write(path: str, value: str | int) -> None:
    """Write one value with a single write(2); raise OSError carrying the path on failure."""
    data = str(value).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        n = os.write(fd, data)
        if n != len(data):  # cgroupfs takes a value in one write; a short write means it was cut
            raise OSError(errno.EIO, f"short write ({n}/{len(data)} bytes)", path)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, path) from None
        raise
    finally:
        os.close(fd)


def read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode().strip()
    finally:
        os.close(fd)


def read_or(path: str, default: str | None = None) -> str | None:
    try:
        return read(path)
    except OSError:
        return default


def read_int(path: str) -> int | None:
    """An integer file; "max" (v2 unlimited) and absent files give None."""
    v = read_or(path)
    if v is None or v == "max" or v == "":
        return None
    try:
        return int(v.split()[0])
    except ValueError:
        return None


def read_kv(path: str) -> dict[str, int]:
    """Flat keyed files (cpu.stat, memory.stat, memory.events, memory.oom_control, pids.events)."""
    out: dict[str, int] = {}
    text = read_or(path, "") or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_pids(path: str) -> list[int]:
    text = read_or(path, "") or ""
    return [int(x) for x in text.split()]
