"""`docker export`: a container's merged filesystem as one tar stream.

For overlay the merged view is mounted read-only in a forked child's private mount namespace
(the container's upper becomes the topmost lowerdir, so no second writer shares its workdir),
and the child streams the tar through a pipe: nothing stays mounted, whatever happens.
"""
from __future__ import annotations

import os
import tarfile

from nsbox.image.graphdriver import COPY, RootfsPlan


def _tar_tree(root: str, fd: int) -> None:
    """Walked by fds (runtime/inroot.py): a link the container swaps in is stored, never followed."""
    from nsbox.runtime import inroot
    links: dict = {}
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for node in inroot.walk(top):
                ti = inroot.tarinfo(node, node.rel)
                if ti is not None:
                    inroot.add_node(tar, node, ti, links)
    finally:
        os.close(top)


class ExportStream:
    """The read end of the export pipe; close() waits for the child and reports its failure."""

    def __init__(self, fd: int, pid: int, rmdir: str | None = None):
        self._f = os.fdopen(fd, "rb")
        self._pid = pid
        self._rmdir = rmdir

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if not data and n != 0:
            self._eof = True
        return data

    _eof = False

    def close(self) -> None:
        if self._pid:
            if not self._eof:  # the reader stopped early (tar trailer, or gave up): stop our child
                import signal
                os.kill(self._pid, signal.SIGKILL)
            self._f.close()
            _, status = os.waitpid(self._pid, 0)
            self._pid = 0
            if self._rmdir:
                os.rmdir(self._rmdir)  # the child's mount died with its namespace
            if self._eof and os.waitstatus_to_exitcode(status) != 0:
                from nsbox.runtime.errors import NsboxError
                raise NsboxError("export failed")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def export_rootfs(plan: RootfsPlan, out=None):
    """Write the tar to the binary stream `out`, or return an ExportStream when out is None."""
    if plan.kind == COPY:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                _tar_tree(plan.rootfs, w)
            except BaseException:
                code = 1
            os._exit(code)
    else:
        import tempfile
        # made (and removed) by the parent: a killed child leaves no directory behind, and its
        # mount vanishes with its mount namespace
        target = tempfile.mkdtemp(prefix="nsbox-export-")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 1
            try:
                from nsbox.runtime import linux
                sc = linux.Syscalls()
                sc.unshare(linux.CLONE_NEWNS)
                sc.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                lowers = ([plan.upper] if plan.upper else []) + list(plan.lowerdirs)
                if len(lowers) == 1:   # a lower-only overlay needs two layers: bind the single one
                    sc.mount(lowers[0], target, None, linux.MS_BIND)
                else:
                    linux.overlay_mount(sc, lowers, None, None, target)
                _tar_tree(target, w)
                code = 0
            except BaseException as e:
                os.write(2, f"export: {e}\n".encode())
            os._exit(code)
    os.close(w)
    stream = ExportStream(r, pid, target if plan.kind != COPY else None)
    if out is None:
        return stream
    with stream:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
    return None
