"""The build cache: (parent image, instruction, source checksum) -> the image that step produced.

    <store root>/buildcache/<sha256 of the key>   holds "sha256:<image id>"
    <store root>/buildcache/parents/<child hex>   holds the parent image id (docker's parent link:
                                                  `images` can hide untagged images with children)

An entry is written (atomically) only after its image is committed, and a lookup checks the
image still exists, so neither a kill -9 nor `rmi`/`prune` can make the cache point at nothing.
"""
from __future__ import annotations

import hashlib
import json
import os

from nsbox.runtime.errors import NotFound


class BuildCache:
    def __init__(self, store):
        self.store = store
        self.dir = os.path.join(store.root, "buildcache")

    @staticmethod
    def key(parent: str, text: str, checksum: str = "", extra: dict | None = None) -> str:
        doc = json.dumps([parent, text, checksum, extra or {}], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode("utf-8", "surrogateescape")).hexdigest()

    def get(self, key: str):
        try:
            with open(os.path.join(self.dir, key)) as f:
                image_id = f.read().strip()
            return self.store.get(image_id)
        except (FileNotFoundError, NotFound, ValueError):
            return None
        except Exception:
            return None  # a corrupt entry is a miss, never an error

    def put(self, key: str, image_id: str) -> None:
        from nsbox.image.layers import atomic_write
        os.makedirs(self.dir, exist_ok=True)
        self.store.init()
        atomic_write(os.path.join(self.dir, key), image_id.encode(), self.store.layers.tmp)

    def set_parent(self, child: str, parent: str) -> None:
        from nsbox.image.layers import atomic_write, hexof
        d = os.path.join(self.dir, "parents")
        os.makedirs(d, exist_ok=True)
        self.store.init()
        atomic_write(os.path.join(d, hexof(child)), parent.encode(), self.store.layers.tmp)


def intermediate_ids(store) -> set[str]:
    """Build intermediates: images that are the parent of another existing image (docker hides the
    untagged ones from `images` without -a, and `image prune` keeps them)."""
    d = os.path.join(store.root, "buildcache", "parents")
    existing = set(store.ids())
    out = set()
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in names:
        if "sha256:" + n not in existing:
            continue
        try:
            with open(os.path.join(d, n)) as f:
                parent = f.read().strip()
        except OSError:
            continue
        if parent in existing:
            out.add(parent)
    return out
