"""Small filesystem helpers: atomic writes, locks, time stamps."""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager


def write_atomic(path: str, data: bytes | str, mode: int = 0o644, durable: bool = False) -> None:
    """tmp + rename: a reader sees the old or the new file, never half of one.

    durable=True adds an fsync for data that must survive power loss; container state does not
    need it (it is reconciled against the live processes on every read).
    """
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)  # a nearly full disk takes part of a write before it says ENOSPC
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        # never a tmp file left behind (a full disk makes this the common failure)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def disk_full(e: BaseException) -> bool:
    """ENOSPC or EDQUOT: the filesystem (or the quota) has no room left."""
    import errno
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def write_json(path: str, obj, durable: bool = False) -> None:
    # compact, as docker's own state files: json's C encoder does not do indent (5x slower)
    write_atomic(path, json.dumps(obj, separators=(",", ":")), durable=durable)


def no_space(e: OSError, candidates: list[str]):
    """A full disk as one line that names what filled up: the file being written when the kernel
    said so, else the first of `candidates` (the directories the command writes to) with no room."""
    from nsbox.runtime.errors import NsboxError
    where = e.filename
    if not where:
        for d in candidates:
            try:
                v = os.statvfs(d)
            except OSError:
                continue
            if v.f_bavail == 0 or v.f_favail == 0:
                where = d
                break
    what = "quota exceeded" if e.errno == __import__("errno").EDQUOT else "no space left on device"
    return NsboxError(f"{what}: {where} is full" if where else what)


def read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())


@contextmanager
def locked(path: str, shared: bool = False):
    """An flock on `path` (created if missing), held for the with-block only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def try_flock(path: str, create: bool = False) -> int | None:
    """An exclusive flock without waiting: the fd holding it, or None while another process holds
    it. A missing file raises FileNotFoundError unless `create`."""
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def now_iso() -> str:
    """RFC 3339 with nanoseconds, UTC, as docker prints it."""
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_iso(s: str) -> float:
    """Seconds since the epoch from our own RFC 3339 stamps (0 for docker's zero time)."""
    if not s or s.startswith("0001-"):
        return 0.0
    import calendar
    main, _, frac = s.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def rmtree(path: str) -> None:
    """shutil.rmtree that does not follow symlinks out and tolerates absence."""
    import shutil
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=False)
