"""`save`/`load`: docker-archive (manifest.json + repositories + config + layer tars) and OCI layout archives.

Loading never extracts the archive to disk: members are looked up by name and streamed into the
blob store, each layer checked against the config's diff_ids, so a hostile archive can at worst
be refused. Layers are written uncompressed (docker save does the same).
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile

from nsbox.image import reference
from nsbox.runtime.errors import InvalidArgument

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    import io
    tar.addfile(ti, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = os.path.getsize(path), 0o644, 0
    with open(path, "rb") as f:
        tar.addfile(ti, f)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(ti)


def save(store, refs: list[str], out, fmt: str = "docker-archive") -> None:
    """Write the images named by `refs` to the binary stream `out`."""
    if fmt not in ("docker-archive", "oci-archive"):
        raise InvalidArgument(f"unsupported format {fmt!r}: use docker-archive or oci-archive")
    images = []  # (image, [canonical names to record])
    for ref in refs:
        img = store.resolve(ref)
        hx = reference.id_prefix(ref)
        by_id = hx is not None and img.id[7:].startswith(hx)
        names = [] if by_id else [reference.normalize(ref)]
        images.append((img, names))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        (_save_docker if fmt == "docker-archive" else _save_oci)(store, images, tar)


def _save_docker(store, images, tar) -> None:
    manifest, repositories, done = [], {}, set()
    for img, names in images:
        cfg_name = img.id[7:] + ".json"
        if cfg_name not in done:
            _add_file(tar, cfg_name, store.layers.blob_path(img.id))
            done.add(cfg_name)
        layers = []
        chains = chain_ids(img.layers)
        for i, (diff_id, chain) in enumerate(zip(img.layers, chains)):
            d = chain[7:]
            layers.append(f"{d}/layer.tar")
            if d in done:
                continue
            done.add(d)
            _add_dir(tar, d)
            _add_bytes(tar, f"{d}/VERSION", b"1.0")
            v1 = {"id": d, "created": img.created, "container_config": {}}
            if i:
                v1["parent"] = chains[i - 1][7:]
            _add_bytes(tar, f"{d}/json", json.dumps(v1).encode())
            _add_file(tar, f"{d}/layer.tar", store.layers.blob_path(diff_id))
        tags = list(names)  # fully qualified: podman reads a bare "busybox" as localhost/busybox
        manifest.append({"Config": cfg_name, "RepoTags": tags or None, "Layers": layers})
        for n in names:
            repo, tag = reference.split_familiar(n)
            if chains:
                repositories.setdefault(repo, {})[tag] = chains[-1][7:]
    _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _save_oci(store, images, tar) -> None:
    """An OCI image layout plus a docker manifest.json over the same blobs (what docker >= 25 writes):
    OCI readers take index.json, and tools that load only one image per OCI archive (podman 4)
    fall back to manifest.json for multi-image archives."""
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    done, index, docker_manifest = set(), [], []

    def blob(digest: str, path: str | None = None, data: bytes | None = None) -> None:
        if digest in done:
            return
        done.add(digest)
        name = "blobs/sha256/" + digest[7:]
        _add_file(tar, name, path) if path else _add_bytes(tar, name, data)

    for img, names in images:
        cfg_path = store.layers.blob_path(img.id)
        blob(img.id, cfg_path)
        layers = []
        for diff_id in img.layers:
            p = store.layers.blob_path(diff_id)
            blob(diff_id, p)
            layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": os.path.getsize(p)})
        m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": img.id, "size": os.path.getsize(cfg_path)},
                        "layers": layers}).encode()
        md = "sha256:" + hashlib.sha256(m).hexdigest()
        blob(md, data=m)
        docker_manifest.append({"Config": "blobs/sha256/" + img.id[7:], "RepoTags": list(names) or None,
                                "Layers": ["blobs/sha256/" + d[7:] for d in img.layers]})
        for n in names or [None]:
            desc = {"mediaType": OCI_MANIFEST, "digest": md, "size": len(m)}
            if n:
                desc["annotations"] = {"io.containerd.image.name": n,
                                       "org.opencontainers.image.ref.name": n}
            index.append(desc)
    _add_bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
    if len(images) > 1:
        _add_bytes(tar, "manifest.json", json.dumps(docker_manifest).encode())


# ---------------------------------------------------------------------------------------- load
def load(store, f) -> list[str]:
    """Load every image in the archive stream `f` -> docker's output lines."""
    store.init()
    with store.import_guard():
        path, tmp = _seekable(store, f)
        try:
            try:
                tar = tarfile.open(path, mode="r:*")
            except tarfile.TarError as e:
                raise InvalidArgument(f"not an image archive: {e}") from None
            with tar:
                names = set(tar.getnames())
                if "manifest.json" in names:
                    return _load_docker(store, tar)
                if "index.json" in names:
                    return _load_oci(store, tar)
                raise InvalidArgument("not an image archive: no manifest.json or index.json")
        finally:
            if tmp:
                os.unlink(path)


def _seekable(store, f) -> tuple[str, bool]:
    name = getattr(f, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return name, False
    from nsbox.image.leftovers import owned
    fd, path = tempfile.mkstemp(dir=store.layers.tmp, prefix=owned("load-"))
    with os.fdopen(fd, "wb") as out:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    return path, True


def _member(tar: tarfile.TarFile, name: str):
    name = os.path.normpath(name).lstrip("/") if name else name
    try:
        m = tar.getmember(name)
    except KeyError:
        raise InvalidArgument(f"invalid image archive: missing {name!r}") from None
    if not m.isreg():
        raise InvalidArgument(f"invalid image archive: {name!r} is not a regular file")
    return tar.extractfile(m)


def _read_json(tar, name: str, limit: int = 16 << 20) -> tuple[dict | list, bytes]:
    data = _member(tar, name).read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"invalid image archive: {name!r} is too large")
    try:
        return json.loads(data), data
    except ValueError:
        raise InvalidArgument(f"invalid image archive: {name!r} is not JSON") from None


def _commit(store, config_raw: bytes, config: dict, layer_members: list, tar, names: list[str]) -> list[str]:
    if not isinstance(config, dict):
        raise InvalidArgument("invalid image archive: config is not an object")
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(layer_members):
        raise InvalidArgument(f"invalid image archive: {len(layer_members)} layers but {len(diff_ids)} diff_ids")
    for diff_id, member in zip(diff_ids, layer_members):
        if not store.layers.has_blob(diff_id):
            store.layers.ingest(_member(tar, member), expect=diff_id)
    img = store.commit_image(config, [], raw=config_raw)
    out = []
    for n in names:
        store.tag(img.id, n)
        out.append(f"Loaded image: {reference.familiar(reference.normalize(n))}")
    return out or [f"Loaded image ID: {img.id}"]


def _load_docker(store, tar) -> list[str]:
    manifest, _ = _read_json(tar, "manifest.json")
    if not isinstance(manifest, list):
        raise InvalidArgument("invalid image archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        config, raw = _read_json(tar, entry["Config"])
        out += _commit(store, raw, config, entry.get("Layers") or [], tar, entry.get("RepoTags") or [])
    return out


def _load_oci(store, tar) -> list[str]:
    index, _ = _read_json(tar, "index.json")
    out = []
    for desc in index.get("manifests", []):
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name") or ""
        mf, _ = _read_json(tar, "blobs/sha256/" + desc["digest"].split(":", 1)[1])
        if mf.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in mf:
            from nsbox.image.imageconfig import arch
            subs = [m for m in mf["manifests"] if (m.get("platform") or {}).get("architecture", arch()) == arch()]
            if not subs:
                continue
            mf, _ = _read_json(tar, "blobs/sha256/" + subs[0]["digest"].split(":", 1)[1])
        config, raw = _read_json(tar, "blobs/sha256/" + mf["config"]["digest"].split(":", 1)[1])
        layers = ["blobs/sha256/" + l["digest"].split(":", 1)[1] for l in mf.get("layers", [])]
        names = []
        if name and ("/" in name or ":" in name):
            try:
                reference.parse(name)
                names = [name]
            except InvalidArgument:
                pass
        out += _commit(store, raw, config, layers, tar, names)
    return out
