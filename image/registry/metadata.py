"""What the store learns from registries, kept beside it (the store itself knows only diff_ids):

    <root>/image/repodigests.json   {"localhost:5000/x@sha256:<manifest>": "sha256:<image id>"}
    <root>/image/distribution.json  {"<diff_id>": {"digest": gzip blob digest, "size": n, "repos": [...]}}

repodigests make `run repo@sha256:...` resolve after a pull by digest; distribution lets push skip
recompressing a layer the registry already has, and mount it from a sibling repository.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os

from nsbox.image.layers import atomic_write


class Metadata:
    def __init__(self, store):
        self.store = store
        self.root = store.root

    @contextlib.contextmanager
    def _edit(self, name: str):
        self.store.init()
        fd = os.open(os.path.join(self.root, "registry.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read(name)
            yield data
            atomic_write(os.path.join(self.root, name), json.dumps(data, indent=1, sort_keys=True).encode(),
                         self.store.layers.tmp)
        finally:
            os.close(fd)

    def _read(self, name: str) -> dict:
        try:
            with open(os.path.join(self.root, name)) as f:
                d = json.load(f)
                return d if isinstance(d, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    # ---- repo digests
    def image_for_digest(self, repo_at_digest: str) -> str | None:
        return self._read("repodigests.json").get(repo_at_digest)

    def add_repo_digest(self, repository: str, manifest_digest: str, image_id: str) -> None:
        with self._edit("repodigests.json") as d:
            d[f"{repository}@{manifest_digest}"] = image_id

    def repo_digests(self, image_id: str) -> list[str]:
        return sorted(k for k, v in self._read("repodigests.json").items() if v == image_id)

    # ---- compressed blobs known for a diff_id
    def blobsum(self, diff_id: str) -> dict | None:
        return self._read("distribution.json").get(diff_id)

    def add_blobsum(self, diff_id: str, digest: str, size: int, repository: str) -> None:
        with self._edit("distribution.json") as d:
            e = d.get(diff_id)
            if not e or e.get("digest") != digest:
                e = d[diff_id] = {"digest": digest, "size": size, "repos": []}
            if repository not in e["repos"]:
                e["repos"] = (e["repos"] + [repository])[-8:]
