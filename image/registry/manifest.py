"""Manifests: media types, parsing, platform selection in an index, and building one for push."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from nsbox.runtime.errors import InvalidArgument, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
                   "application/vnd.oci.image.layer.v1.tar+zstd",
                   "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
DOCKER_LAYER_TYPES = (DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")

ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MAX_MANIFEST = 4 << 20   # distribution's own limit


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict) -> "Descriptor":
        try:
            digest, size = d["digest"], int(d["size"])
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("malformed manifest: descriptor without digest/size") from None
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
            raise InvalidArgument(f"unsupported digest {digest!r} (only sha256)")
        return cls(d.get("mediaType", ""), digest, size, d.get("platform") or {}, d.get("urls") or [])


@dataclass
class Manifest:
    media_type: str
    raw: bytes
    digest: str
    json: dict

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def config(self) -> Descriptor:
        return Descriptor.from_json(self.json.get("config") or {})

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(l) for l in self.json.get("layers") or []]

    @property
    def manifests(self) -> list[Descriptor]:
        return [Descriptor.from_json(m) for m in self.json.get("manifests") or []]


def parse(raw: bytes, content_type: str) -> Manifest:
    try:
        j = json.loads(raw)
    except ValueError:
        raise InvalidArgument("malformed manifest: not JSON") from None
    if not isinstance(j, dict):
        raise InvalidArgument("malformed manifest: not an object")
    mt = j.get("mediaType") or (content_type or "").split(";")[0].strip()
    if mt in DOCKER_SCHEMA1 or j.get("schemaVersion") == 1:
        raise InvalidArgument("unsupported manifest: Docker Image manifest v2 schema 1 (push it again with a "
                              "newer tool)")
    if not mt or mt == "application/json":  # OCI allows mediaType to be absent
        mt = OCI_INDEX if "manifests" in j else OCI_MANIFEST
    if mt not in INDEX_TYPES + MANIFEST_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {mt!r}")
    return Manifest(mt, raw, sha256(raw), j)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def parse_platform(s: str | None) -> Platform:
    from nsbox.image.imageconfig import arch
    if not s:
        return Platform("linux", arch())
    parts = s.lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {s!r}: expected os/arch[/variant]")
    aliases = {"x86_64": "amd64", "aarch64": "arm64", "armhf": "arm"}
    return Platform(parts[0], aliases.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")


def select(index: Manifest, want: Platform, ref: str) -> Descriptor:
    """containerd's rule: exact os/arch, then variant (requested one, or the arch's default, or none)."""
    cands = [d for d in index.manifests if d.media_type not in INDEX_TYPES or True]
    cands = [d for d in cands if d.platform.get("os") == want.os and d.platform.get("architecture") == want.architecture]
    if want.variant:
        exact = [d for d in cands if d.platform.get("variant", "") == want.variant]
        if not exact and want.variant == _DEFAULT_VARIANT.get(want.architecture):
            exact = [d for d in cands if not d.platform.get("variant")]
        cands = exact
    else:
        default = _DEFAULT_VARIANT.get(want.architecture)
        cands.sort(key=lambda d: 0 if d.platform.get("variant", "") in ("", default) else 1)
    if not cands:
        have = ", ".join(sorted({str(Platform(d.platform.get("os", "?"), d.platform.get("architecture", "?"),
                                              d.platform.get("variant", ""))) for d in index.manifests}))
        raise NotFound(f"no matching manifest for {want} in the manifest list entries of {ref} (available: {have})")
    return cands[0]


def config_platform(config: dict) -> Platform:
    return Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))


def build_docker_manifest(config_digest: str, config_size: int, layers: list[tuple[str, int]]) -> bytes:
    """Docker schema2 with gzip layers: what `docker push` sends."""
    m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
         "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest},
         "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": s, "digest": d} for d, s in layers]}
    return json.dumps(m, indent=3).encode()
