"""What killed imports and builds leave in the image store, swept at the next store open.

* Temp entries under <store>/tmp: every writer names them with owned(prefix), which carries its
  pid; an entry whose pid is gone is debris. (Entries named by older versions carry no pid: they
  go only when no import holds the GC guard, as GC has always done.)
* Images a build committed before it was killed: a build lists what it commits (and the cached
  images it builds on) in a journal, <store>/builds/<random>, flocked for its whole life. A
  journal whose lock is free belongs to a dead build: its images that dangle (no name, no
  container, no child image, in no live build's journal) are removed, and then their parents that
  dangle in turn, as `image prune` would.
"""
from __future__ import annotations

import fcntl
import os
import re

_OWNED = re.compile(r"^\.?[a-z]+(?:-[a-z]+)*-(\d+)-")


def owned(prefix: str) -> str:
    """A temp name prefix that says which process owns the entry."""
    return f"{prefix}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def stale_tmp(name: str, guard_free: bool) -> bool:
    m = _OWNED.match(name)
    if m:
        return not _pid_alive(int(m.group(1)))
    return guard_free


def sweep(store) -> None:
    """At a store open: cheap when there is nothing to do (two directory listings)."""
    import shutil
    try:
        names = os.listdir(store.layers.tmp)
    except FileNotFoundError:
        names = []
    if names:
        guard_free = _try_exclusive(store)
        try:
            for n in names:
                if stale_tmp(n, guard_free is not None):
                    p = os.path.join(store.layers.tmp, n)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        try:
                            os.unlink(p)
                        except FileNotFoundError:
                            pass
        finally:
            if guard_free is not None:
                os.close(guard_free)
    _sweep_builds(store)


def _try_exclusive(store) -> int | None:
    """gc.lock exclusively, if no import holds it now (the fd), else None."""
    from nsbox.runtime.fsutil import try_flock
    try:
        return try_flock(os.path.join(store.root, "gc.lock"), create=True)
    except OSError:
        return None


def _journals_dir(store) -> str:
    return os.path.join(store.root, "builds")


class BuildJournal:
    """The images a build in progress has committed or builds on (one id a line)."""

    def __init__(self, store):
        d = _journals_dir(store)
        os.makedirs(d, exist_ok=True)
        name = os.urandom(8).hex()
        tmp = os.path.join(d, "." + name)
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.path = os.path.join(d, name)
        os.rename(tmp, self.path)  # visible only with its lock held: never mistaken for a dead one

    def add(self, image_id: str) -> None:
        os.write(self.fd, image_id.encode() + b"\n")

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


def _read_ids(fd: int) -> set[str]:
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        return {ln.strip().decode() for ln in f if ln.strip()}


def _sweep_builds(store) -> None:
    from nsbox.runtime.fsutil import try_flock
    d = _journals_dir(store)
    try:
        names = [n for n in os.listdir(d) if not n.startswith(".")]
    except FileNotFoundError:
        return
    live: set[str] = set()
    dead: set[str] = set()
    held: list[tuple[int, str]] = []
    for n in names:
        p = os.path.join(d, n)
        try:
            fd = try_flock(p)
        except FileNotFoundError:
            continue
        if fd is None:  # a live build: read its journal without its lock
            try:
                with open(p, "rb") as f:
                    live |= {ln.strip().decode() for ln in f if ln.strip()}
            except FileNotFoundError:
                pass
            continue
        dead |= _read_ids(fd)
        held.append((fd, p))  # keep the dead journals locked: one sweeper at a time
    kept: set[str] = set()
    try:
        if dead - live:
            kept = _remove_dangling(store, dead - live)
    finally:
        for i, (fd, p) in enumerate(held):
            try:
                if kept and i == 0:
                    # dangling but for a container (the dead build's RUN step, say): try again later
                    from nsbox.image.layers import atomic_write
                    atomic_write(p, "".join(k + "\n" for k in sorted(kept)).encode(), d)
                else:
                    os.unlink(p)
            except FileNotFoundError:
                pass
            os.close(fd)


def _remove_dangling(store, candidates: set[str]) -> set[str]:
    """Returns the candidates that would dangle but for a container using them."""
    from nsbox.image.build.cache import intermediate_ids
    removed = False
    while True:
        named = set(store._refs().values())
        parents = intermediate_ids(store)
        existing = set(store.ids())
        loose = [i for i in candidates & existing if i not in named and i not in parents]
        used = {i for i in loose if store.containers_using(i)}
        gone = [i for i in loose if i not in used]
        if not gone:
            break
        with store._commit_lock():
            named = set(store._refs().values())
            for i in gone:
                if i in named:
                    continue
                try:
                    os.unlink(store._meta_path(i))
                    removed = True
                except FileNotFoundError:
                    pass
        candidates = candidates - set(gone)
    if removed:
        store.gc(blocking=False)  # their blobs and layers
    return used
