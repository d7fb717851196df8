"""The image store: images by name/id, layer sharing, atomic metadata, GC, container rootfs plans.

    <root>/image/refs.json              {"docker.io/library/busybox:latest": "sha256:<id>"}
    <root>/image/images/<idhex>.json    {"id", "size"}: the image exists iff this file does
    <root>/image/blobs/sha256/<hex>     config blobs (id = digest of the config) and layer tars
    <root>/image/layers/<hex>/diff      extracted layers (layers.py)
    <root>/image/driver                 "overlay" | "copy", decided once by a probe mount
    <root>/image/lock                   flock held only around the metadata commit (short)
    <root>/image/gc.lock                shared by every import in flight, exclusive for GC: GC never
                                        deletes a layer an unfinished import is about to reference
    <root>/image/builds/<random>        a build's journal of the images it committed (leftovers.py):
                                        what a killed build left dangling goes at the next store open

The run hot path (resolve + prepare_rootfs of an existing image) reads three small JSON files and
stats the layer dirs: no tarfile/gzip imports.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field

from nsbox.image import reference
from nsbox.image.graphdriver import OVERLAY, RootfsPlan
from nsbox.image.layers import LayerStore, atomic_write, hexof
from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.paths import Paths

MAX_OVERLAY_LAYERS = 500   # fsconfig lowerdir+ hard limit measured on this kernel
DEFAULT_IMAGES = ("docker.io/library/busybox:latest",)


@dataclass
class Image:
    id: str                         # "sha256:<hex of the config blob>"
    config: dict                    # docker/OCI image config
    names: list[str] = field(default_factory=list)   # familiar repo:tag ("busybox:latest")
    size: int = 0

    @property
    def layers(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def created(self) -> str:
        return self.config.get("created", "")

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


def _read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())


class ImageStore:
    def __init__(self, paths: Paths, driver: str | None = None, warn=None):
        """driver: force "overlay"/"copy" (else NSBOX_STORAGE_DRIVER, else probed once per store).
        warn: callback for non-fatal notes (e.g. device nodes skipped while extracting a layer)."""
        self.paths = paths
        self.root = paths.images
        self.layers = LayerStore(self.root, warn)
        self._driver = driver or os.environ.get("NSBOX_STORAGE_DRIVER") or None
        self._refs_path = os.path.join(self.root, "refs.json")
        self._images_dir = os.path.join(self.root, "images")
        from nsbox.image import leftovers
        try:
            leftovers.sweep(self)  # what killed imports and builds left behind (two listdirs if nothing)
        except OSError:
            pass  # a read-only or damaged store still opens; the next open tries again

    # ------------------------------------------------------------------ setup, locks
    def init(self) -> None:
        if not os.path.isdir(self._images_dir):
            os.makedirs(self._images_dir, exist_ok=True)
        self.layers.init_dirs()

    @property
    def driver_name(self) -> str:
        if self._driver:
            return self._driver
        path = os.path.join(self.root, "driver")
        try:
            with open(path) as f:
                self._driver = f.read().strip()
                return self._driver
        except FileNotFoundError:
            pass
        self.init()
        from nsbox.image.graphdriver import probe_overlay
        with self.import_guard():  # the probe's temp dir must not be collected under it
            name = probe_overlay(self.layers.tmp)
        atomic_write(path, name.encode(), self.layers.tmp)  # racing probers agree; last rename wins
        self._driver = name
        return name

    @contextlib.contextmanager
    def _flock(self, name: str, op: int):
        self.init()
        fd = os.open(os.path.join(self.root, name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, op)
            yield
        finally:
            os.close(fd)

    def _commit_lock(self):
        return self._flock("lock", fcntl.LOCK_EX)

    def import_guard(self):
        """Hold for the whole of an import: keeps GC from collecting its not-yet-committed layers."""
        return self._flock("gc.lock", fcntl.LOCK_SH)

    # ------------------------------------------------------------------ lookup
    def _refs(self) -> dict[str, str]:
        try:
            return _read_json(self._refs_path)
        except FileNotFoundError:
            return {}

    def _meta_path(self, image_id: str) -> str:
        return os.path.join(self._images_dir, hexof(image_id) + ".json")

    def ids(self) -> list[str]:
        try:
            return ["sha256:" + n[:-5] for n in os.listdir(self._images_dir) if n.endswith(".json") and len(n) == 69]
        except FileNotFoundError:
            return []

    def get(self, image_id: str, refs: dict[str, str] | None = None) -> Image:
        try:
            meta = _read_json(self._meta_path(image_id))
            config = _read_json(self.layers.blob_path(image_id))
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        refs = self._refs() if refs is None else refs
        names = [reference.familiar(n) for n, i in sorted(refs.items()) if i == image_id]
        return Image(image_id, config, names, meta.get("size", 0))

    def lookup_id(self, ref: str) -> str:
        refs = self._refs()
        hx = reference.id_prefix(ref)
        if hx and len(hx) == 64:
            if os.path.exists(os.path.join(self._images_dir, hx + ".json")):
                return "sha256:" + hx
            raise NotFound(f"No such image: {ref}")
        try:
            r = reference.parse(ref)
        except InvalidArgument:
            r = None
        if r is not None:
            if r.digest and ("sha256:" + r.digest.split(":", 1)[-1]) in self.ids():
                return r.digest
            if r.tag and r.name in refs:
                return refs[r.name]
        if hx and (ref.startswith("sha256:") or r is None or r.name not in refs):
            matches = [i for i in self.ids() if i[7:].startswith(hx)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"ambiguous image id prefix {ref!r}: {len(matches)} images match")
        raise NotFound(f"No such image: {ref}")

    def resolve(self, ref: str) -> Image:
        refs = self._refs()
        return self.get(self.lookup_id(ref), refs)

    def exists(self, ref: str) -> bool:
        try:
            self.lookup_id(ref)
            return True
        except (NotFound, InvalidArgument):
            return False

    def list(self) -> list[Image]:
        refs = self._refs()
        out = []
        for i in self.ids():
            try:
                out.append(self.get(i, refs))
            except NotFound:
                pass  # removed concurrently
        return out

    def ensure_default(self, ref: str) -> Image:
        """resolve(), but build the embedded busybox image on its first use."""
        try:
            return self.resolve(ref)
        except NotFound:
            try:
                canonical = reference.normalize(ref)
            except InvalidArgument:
                raise NotFound(f"No such image: {ref}") from None
            if canonical not in DEFAULT_IMAGES:
                raise
        from nsbox.image import default
        return default.create(self)

    # ------------------------------------------------------------------ writing images
    def commit_image(self, config: dict, names: list[str] = (), raw: bytes | None = None) -> Image:
        """The one way an image comes into existence: layers are already stored.

        `raw` keeps a loaded config's exact bytes (its digest is the image id everywhere else).
        """
        from nsbox.image.layers import fsync_dir
        self.init()
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        size = 0
        for d in diff_ids:
            try:
                size += os.path.getsize(self.layers.blob_path(d))
            except FileNotFoundError:
                raise InvalidArgument(f"layer {d} is missing from the store") from None
        if self.driver_name == OVERLAY:
            for d in diff_ids:  # extract now, so the first `run` is fast
                self.layers.ensure_extracted(d, warn_again=True)
        if raw is None:
            from nsbox.image.imageconfig import serialize
            raw = serialize(config)
        data = raw
        image_id = self.layers.put_bytes(data)
        canon = [reference.normalize(n) for n in names]
        with self._commit_lock():
            meta = self._meta_path(image_id)
            if not os.path.exists(meta):
                atomic_write(meta, json.dumps({"id": image_id, "size": size}).encode(), self.layers.tmp)
            if canon:
                refs = self._refs()
                refs.update({n: image_id for n in canon})
                atomic_write(self._refs_path, json.dumps(refs, indent=1, sort_keys=True).encode(), self.layers.tmp)
            fsync_dir(self._images_dir)
        return self.get(image_id)

    def import_tar(self, f, ref: str | None = None, *, changes: list[str] = (), message: str = "",
                   source: str = "-", created: str | None = None, config: dict | None = None) -> Image:
        """`docker import`: one stream -> a one-layer image."""
        from nsbox.image import imageconfig
        if ref:
            reference.parse(ref)  # fail before the slow part
        with self.import_guard():
            self.init()
            diff_id, _ = self.layers.ingest(f)
            cfg = imageconfig.new_config([diff_id], created=created, base=config,
                                         comment=message or f"Imported from {source}", changes=changes)
            return self.commit_image(cfg, [ref] if ref else [])

    def tag(self, src: str, new: str) -> None:
        image_id = self.lookup_id(src)
        name = reference.normalize(new)
        with self._commit_lock():
            refs = self._refs()
            refs[name] = image_id
            atomic_write(self._refs_path, json.dumps(refs, indent=1, sort_keys=True).encode(), self.layers.tmp)

    def containers_using(self, image_id: str) -> list[str]:
        out = []
        try:
            cids = os.listdir(self.paths.containers)
        except FileNotFoundError:
            return out
        for cid in sorted(cids):
            try:
                cfg = _read_json(os.path.join(self.paths.container_dir(cid), "config.json"))
            except (OSError, ValueError):
                continue
            if isinstance(cfg, dict) and cfg.get("Image") == image_id:
                out.append(cid)
        return out

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """`docker rmi`: untag, and delete the image once no name and no container refers to it.

        Returns docker's output lines ("Untagged: busybox:latest", "Deleted: sha256:...").
        """
        image_id = self.lookup_id(ref)
        by_name = not (reference.id_prefix(ref) and (ref.startswith("sha256:") or image_id[7:].startswith(ref)))
        out: list[str] = []
        with self._commit_lock():
            refs = self._refs()
            names = sorted(n for n, i in refs.items() if i == image_id)
            users = self.containers_using(image_id)
            if by_name:
                name = reference.normalize(ref)
                if users and len(names) <= 1 and not force:
                    raise Conflict(f"conflict: unable to remove repository reference \"{ref}\" (must force) - "
                                   f"container {users[0][:12]} is using its referenced image {image_id[7:19]}")
                refs.pop(name, None)
                out.append(f"Untagged: {reference.familiar(name)}")
                names.remove(name)
                delete = not names and not users
            else:
                if users:
                    raise Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is being "
                                   f"used by stopped container {users[0][:12]}" if not force else
                                   f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - image is being "
                                   f"used by container {users[0][:12]}")
                if len(names) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                                   f"referenced in multiple repositories")
                for n in names:
                    refs.pop(n, None)
                    out.append(f"Untagged: {reference.familiar(n)}")
                delete = True
            atomic_write(self._refs_path, json.dumps(refs, indent=1, sort_keys=True).encode(), self.layers.tmp)
            if delete:
                os.unlink(self._meta_path(image_id))
                out.append(f"Deleted: {image_id}")
        if delete:
            self.gc(blocking=False)
        return out

    # ------------------------------------------------------------------ GC
    def gc(self, blocking: bool = True) -> dict:
        """Delete blobs/layers no image references, and temp leftovers of dead imports."""
        import shutil
        op = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        removed = {"blobs": 0, "layers": 0, "tmp": 0, "bytes": 0}
        try:
            guard = self._flock("gc.lock", op)
            guard.__enter__()
        except BlockingIOError:
            return removed  # an import is running; the next prune collects
        try:
            keep_blobs, keep_layers = set(), set()
            for i in self.ids():
                keep_blobs.add(hexof(i))
                try:
                    cfg = _read_json(self.layers.blob_path(i))
                except (FileNotFoundError, ValueError):
                    continue
                for d in cfg.get("rootfs", {}).get("diff_ids", []):
                    keep_blobs.add(hexof(d))
                    keep_layers.add(hexof(d))
            from nsbox.image.leftovers import stale_tmp
            for name in os.listdir(self.layers.tmp):
                # nobody holds gc.lock shared: all of it is stale, but for the short writes a live
                # process makes outside the guard (metadata commits), which its pid in the name keeps
                if not stale_tmp(name, True):
                    continue
                p = os.path.join(self.layers.tmp, name)
                shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
                removed["tmp"] += 1
            for name in os.listdir(self.layers.blobs):
                if name not in keep_blobs:
                    p = os.path.join(self.layers.blobs, name)
                    removed["bytes"] += os.path.getsize(p)
                    os.unlink(p)
                    removed["blobs"] += 1
            for name in os.listdir(self.layers.layers):
                if name not in keep_layers and name != "empty":
                    shutil.rmtree(os.path.join(self.layers.layers, name), ignore_errors=True)
                    removed["layers"] += 1
        finally:
            guard.__exit__(None, None, None)
        return removed

    def prune(self, all: bool = False) -> tuple[list[str], int]:
        """`docker image prune [-a]`: dangling (or all unused) images, then GC. -> (output lines, bytes)."""
        # build intermediates are parents of other images, not dangling, so they stay; once their
        # child goes, they dangle in turn: repeat until nothing more falls (docker drops whole chains)
        from nsbox.image.build.cache import intermediate_ids
        out: list[str] = []
        while True:
            removed = self._prune_pass(all, set() if all else intermediate_ids(self), out)
            if not removed or all:
                break
        return out, self.gc()["bytes"]

    def _prune_pass(self, all: bool, keep: set[str], out: list[str]) -> int:
        named = set(self._refs().values())
        n = 0
        for i in self.ids():
            if (all or (i not in named and i not in keep)) and not self.containers_using(i):
                with self._commit_lock():
                    refs = self._refs()
                    if not all and i in refs.values():
                        continue
                    for name in [name for name, v in refs.items() if v == i]:
                        refs.pop(name)
                        out.append(f"untagged: {reference.familiar(name)}")
                    atomic_write(self._refs_path, json.dumps(refs, indent=1, sort_keys=True).encode(), self.layers.tmp)
                    try:
                        os.unlink(self._meta_path(i))
                    except FileNotFoundError:
                        continue
                    out.append(f"deleted: {i}")
                    n += 1
        return n

    # ------------------------------------------------------------------ container rootfs
    def prepare_rootfs(self, cid: str, image_id: str, rw_dir: str, copy: bool = False) -> RootfsPlan:
        """copy: a flat copy even on overlay (a user namespace on a filesystem without idmapped mounts)."""
        from nsbox.image import graphdriver
        try:
            diff_ids = _read_json(self.layers.blob_path(image_id))["rootfs"]["diff_ids"]
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        if self.driver_name == OVERLAY and len(diff_ids) <= MAX_OVERLAY_LAYERS and not copy:
            with self.import_guard():  # extraction (if needed) must not race a GC
                lowers = [self.layers.ensure_extracted(d) for d in reversed(diff_ids)] or [self.layers.empty_dir()]
            return graphdriver.plan_overlay(lowers, rw_dir)
        with self.import_guard():
            return graphdriver.plan_copy(self.layers, diff_ids, rw_dir)

    def release_rootfs(self, cid: str, rw_dir: str) -> None:
        from nsbox.image import graphdriver
        graphdriver.release(rw_dir)

    # ------------------------------------------------------------------ commit / history
    def layer_from_dir(self, upper_dir: str) -> str:
        """An overlay upperdir -> a stored OCI tar diff; returns its diff_id.

        Call it inside `with store.import_guard():` and commit the image before leaving it,
        or a concurrent GC may collect the not-yet-referenced layer.
        """
        self.init()
        return self.layers.layer_from_dir(upper_dir)[0]

    def commit_container(self, cid: str, rw_upper_dir: str, changes: list[str] = (), message: str = "",
                         author: str = "", *, image_id: str | None = None, ref: str | None = None,
                         container_config: dict | None = None) -> Image:
        """`docker commit`: the container's upperdir becomes a new top layer over its image
        (image_id defaults to the "Image" of the container's config.json)."""
        from nsbox.image import imageconfig
        if image_id is None:
            cfg_path = os.path.join(self.paths.container_dir(cid), "config.json")
            image_id = _read_json(cfg_path).get("Image")
        base = self.get(image_id)
        with self.import_guard():
            self.init()
            diff_id, _ = self.layers.layer_from_dir(rw_upper_dir)
            cfg = imageconfig.child_config(base.config, diff_id, changes=changes, comment=message, author=author,
                                           container_id=cid, container_config=container_config)
            return self.commit_image(cfg, [ref] if ref else [])

    def history(self, ref: str) -> list[dict]:
        """Newest first, like `docker history`: {id, created, created_by, size, comment, empty_layer}."""
        img = self.resolve(ref)
        diff_ids = img.layers
        hist = img.config.get("history") or [{} for _ in diff_ids]
        rows, li = [], 0
        for h in hist:
            size = 0
            if not h.get("empty_layer") and li < len(diff_ids):
                try:
                    size = os.path.getsize(self.layers.blob_path(diff_ids[li]))
                except FileNotFoundError:
                    pass
                li += 1
            rows.append({"id": "<missing>", "created": h.get("created", ""), "created_by": h.get("created_by", ""),
                         "size": size, "comment": h.get("comment", ""), "empty_layer": bool(h.get("empty_layer"))})
        rows.reverse()
        if rows:
            rows[0]["id"] = img.id
        return rows


def export_rootfs(plan: RootfsPlan, out=None):
    """`docker export`: the container's merged filesystem as a tar.

    With `out` (a binary stream) the tar is written to it; without, a readable stream is returned
    (close() it: that reaps the helper process and raises if the export failed)."""
    from nsbox.image import export
    return export.export_rootfs(plan, out)
