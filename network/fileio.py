"""flock-guarded JSON files: the only persistence network/ needs."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator

from nsbox.runtime.paths import Paths


@contextlib.contextmanager
def locked(lock_path: str) -> Iterator[None]:
    """An exclusive flock on a lock file; dies with the process, so a kill -9 never leaves it held."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json(path: str, data) -> None:
    """Atomic replace (write a temp file, fsync-free rename): readers never see half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def root_tag(paths: Paths) -> str:
    """Short hash of the state root: tags kernel objects (nft tables, veth aliases) so that reconcile
    in one root never touches another root's objects (parallel test runs share the kernel)."""
    return paths.tag
