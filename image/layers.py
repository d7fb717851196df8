"""Content-addressed blobs and extracted layer dirs.

    <store>/blobs/sha256/<hex>      configs and UNCOMPRESSED layer tars (digest == diff_id), so save
                                    re-emits the exact bytes the diff_id was computed over
    <store>/layers/<hex>/diff       a layer tar extracted once with overlay whiteouts, keyed by diff_id
                                    (a diff doesn't depend on its parents under overlay, so the same
                                    diff is shared by every image containing it)
    <store>/tmp/                    everything is written here first and renamed into place, so a
                                    killed import leaves only temp entries; their names carry the
                                    writer's pid, and the next store open sweeps those of dead ones
"""
from __future__ import annotations

import os
import stat

from nsbox.image import whiteout as wh
from nsbox.image.leftovers import owned

# hashlib/tempfile/shutil are imported inside the writers: the `run` hot path only stats layer dirs

_CHUNK = 1 << 20


def hexof(digest: str) -> str:
    algo, _, hx = digest.partition(":")
    if algo != "sha256" or len(hx) != 64 or not all(c in "0123456789abcdef" for c in hx):
        from nsbox.runtime.errors import InvalidArgument
        raise InvalidArgument(f"invalid digest {digest!r}")
    return hx


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, tmpdir: str | None = None) -> None:
    """tmp + fsync + rename + fsync(dir): readers see the old or the new file, never half of one."""
    import tempfile
    d = tmpdir or os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=owned(".tmp-"))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(os.path.dirname(path))


class _Peek:
    """A read-only stream with a peek at its first bytes (stdin has no seek)."""

    def __init__(self, f):
        self.f = f
        self.head = b""
        while len(self.head) < 6:
            chunk = f.read(6 - len(self.head))
            if not chunk:
                break
            self.head += chunk
        self._pending = self.head

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n < 0:
                out, self._pending = self._pending + self.f.read(), b""
                return out
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        return self.f.read(n)

    def readable(self) -> bool:
        return True


def decompressed(f):
    """Wrap `f` so reads yield the uncompressed tar (gzip, xz, bzip2, zstd or plain)."""
    p = _Peek(f)
    h = p.head
    if h.startswith(b"\x1f\x8b"):
        import gzip
        return gzip.GzipFile(fileobj=p, mode="rb")
    if h.startswith(b"\xfd7zXZ\x00"):
        import lzma
        return lzma.LZMAFile(p)
    if h.startswith(b"BZh"):
        import bz2
        return bz2.BZ2File(p)
    if h.startswith(b"\x28\xb5\x2f\xfd"):
        return _Zstd(p)
    return p


class _Zstd:
    def __init__(self, src):
        import subprocess
        import threading
        self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

        def feed():
            try:
                while chunk := src.read(_CHUNK):
                    self.proc.stdin.write(chunk)
            except BrokenPipeError:
                pass
            finally:
                self.proc.stdin.close()
        self.t = threading.Thread(target=feed, daemon=True)
        self.t.start()

    def read(self, n: int = -1) -> bytes:
        return self.proc.stdout.read(n)


class _HashingWriter:
    def __init__(self, f):
        import hashlib
        self.f, self.h, self.size = f, hashlib.sha256(), 0

    def write(self, b) -> int:
        self.h.update(b)
        self.size += len(b)
        return self.f.write(b)


_SKIPPED = "skipped-devices.json"   # next to a layer's diff/: what its extraction left out


class LayerStore:
    def __init__(self, root: str, warn=None):
        self.root = root
        self.warn = warn or (lambda msg: None)
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.tmp = os.path.join(root, "tmp")

    def init_dirs(self) -> None:
        for d in (self.blobs, self.layers, self.tmp):
            os.makedirs(d, exist_ok=True)

    # ---- blobs
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, hexof(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_bytes(self, data: bytes) -> str:
        import hashlib
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not os.path.exists(path):
            atomic_write(path, data, self.tmp)
        return digest

    def _write_blob(self, fill, expect: str | None = None) -> tuple[str, int]:
        """The one way a streamed blob enters the store: write to tmp while hashing, fsync, then
        rename to its digest (same bytes -> same name, so a racing writer is harmless). -> (digest, size)"""
        import tempfile
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix=owned("blob-"))
        try:
            with os.fdopen(fd, "wb") as out:
                hw = _HashingWriter(out)
                fill(hw)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + hw.h.hexdigest()
            if expect and expect != digest:
                from nsbox.runtime.errors import InvalidArgument
                raise InvalidArgument(f"layer digest mismatch: expected {expect}, got {digest}")
            os.rename(tmp, self.blob_path(digest))
            return digest, hw.size
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def ingest(self, f, expect: str | None = None) -> tuple[str, int]:
        """Copy a (possibly compressed) stream into the blob store uncompressed -> (digest, size)."""
        src = decompressed(f)

        def fill(hw) -> None:
            while chunk := src.read(_CHUNK):
                hw.write(chunk)
        return self._write_blob(fill, expect)

    # ---- extracted layers
    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers, hexof(diff_id), "diff")

    def empty_dir(self) -> str:
        """A lowerdir for images without layers (overlay needs at least one)."""
        d = os.path.join(self.layers, "empty", "diff")
        os.makedirs(d, exist_ok=True)
        return d

    def ensure_extracted(self, diff_id: str, warn_again: bool = False) -> str:
        """The layer's directory, extracted once. Device nodes it skips are warned about then, and
        with warn_again also when it already was (every new image made of it says so: an
        `import` of the same tar twice must not be silent the second time)."""
        final = self.layer_dir(diff_id)
        if os.path.isdir(final):
            if warn_again:
                self._warn_devices(diff_id, self._skipped_record(diff_id))
            return final
        import json
        import shutil
        import tempfile
        from nsbox.image import tarsafe
        tmp = tempfile.mkdtemp(dir=self.tmp, prefix=owned("layer-"))
        try:
            os.mkdir(os.path.join(tmp, "diff"), 0o755)
            with open(self.blob_path(diff_id), "rb") as f:
                res = tarsafe.extract(f, os.path.join(tmp, "diff"), mode="layer")
            if res.skipped_devices:
                with open(os.path.join(tmp, _SKIPPED), "w") as f:
                    json.dump(res.skipped_devices[:100], f)
            self._warn_devices(diff_id, res.skipped_devices)
            try:
                os.rename(tmp, os.path.dirname(final))
            except OSError:
                if not os.path.isdir(final):  # not a lost race: a real error
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def _skipped_record(self, diff_id: str) -> list[str]:
        import json
        try:
            with open(os.path.join(os.path.dirname(self.layer_dir(diff_id)), _SKIPPED)) as f:
                return [str(n) for n in json.load(f)]
        except (OSError, ValueError, TypeError):
            return []

    def _warn_devices(self, diff_id: str, names: list[str]) -> None:
        if names:
            self.warn(f"layer {diff_id[7:19]}: skipped {len(names)} device node(s) "
                      f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}): "
                      "containers get their own /dev, and image device nodes would expose host devices")

    def apply_into(self, diff_id: str, rootfs: str) -> None:
        """Copy driver: apply one layer tar (whiteouts delete) onto a flat rootfs."""
        from nsbox.image import tarsafe
        with open(self.blob_path(diff_id), "rb") as f:
            tarsafe.extract(f, rootfs, mode="apply")

    # ---- upperdir -> tar diff
    def layer_from_dir(self, upper: str) -> tuple[str, int]:
        """Walk an overlay upperdir and store an OCI tar diff of it -> (diff_id, size)."""
        import tarfile

        def fill(hw) -> None:
            with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _tar_upper(tar, upper)
        return self._write_blob(fill)


def _tar_upper(tar, upper: str) -> None:
    """Depth-first so a directory's entry precedes its children (and its opaque marker).

    Walked by fds (runtime/inroot.py): a running container can swap any of its directories
    for a symlink while we read, and the walk must still never leave the upper dir.
    """
    import tarfile
    from nsbox.runtime import inroot
    links: dict = {}
    top = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for node in inroot.walk(top):
            st = node.st
            rel = os.path.dirname(node.rel)
            if wh.is_overlay_whiteout(st):
                ti = tarfile.TarInfo(os.path.join(rel, wh.WH_PREFIX + node.name))
                ti.mtime = int(st.st_mtime)
                tar.addfile(ti)
                continue
            ti = inroot.tarinfo(node, node.rel)
            if ti is None:
                continue
            inroot.add_node(tar, node, ti, links, file_caps=True)
            if node.fd is not None and wh.is_opaque(node.fd):
                op = tarfile.TarInfo(os.path.join(node.rel, wh.WH_OPAQUE))
                op.mtime = int(st.st_mtime)
                tar.addfile(op)
    finally:
        os.close(top)
