"""Docker image references: parse and normalize (`busybox` == `docker.io/library/busybox:latest`).

Grammar follows distribution/reference: [domain/]path[:tag][@algo:hex]. Pure string logic, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nsbox.runtime.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}\Z")
_HEXID = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})\Z")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str            # "library/busybox"
    tag: str | None      # None only when a digest was given without a tag
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Fully qualified repository: docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """What docker shows: busybox, user/app, quay.io/x/y."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len(OFFICIAL_PREFIX):] if self.path.startswith(OFFICIAL_PREFIX) else self.path
        return self.repository

    @property
    def name(self) -> str:
        """Canonical repo:tag, the key the store indexes by."""
        return f"{self.repository}:{self.tag or DEFAULT_TAG}"

    @property
    def familiar(self) -> str:
        return f"{self.familiar_repository}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def parse(ref: str, default_tag: bool = True) -> Reference:
    """Parse and normalize; raise InvalidArgument for anything docker would reject."""
    if not ref or len(ref) > 4096:
        raise InvalidArgument(f"invalid reference format: {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidArgument(f"invalid reference format: {ref}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:  # a colon after the last slash is a tag, not a port
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference format: {ref}")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path_parts = first, parts[1:]
        if not _DOMAIN.match(domain):
            raise InvalidArgument(f"invalid reference format: {ref}")
    else:
        domain, path_parts = DEFAULT_DOMAIN, parts
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    for comp in path_parts:
        if not _COMPONENT.match(comp):
            if comp != comp.lower() and _COMPONENT.match(comp.lower()):
                raise InvalidArgument(f"invalid reference format: repository name ({ref}) must be lowercase")
            raise InvalidArgument(f"invalid reference format: {ref}")
    path = "/".join(path_parts)
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument("invalid reference format: repository name must not be more than 255 characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def normalize(ref: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`."""
    return parse(ref).name


def familiar(canonical: str) -> str:
    """`docker.io/library/busybox:latest` -> `busybox:latest`."""
    return parse(canonical).familiar


def split_familiar(canonical: str) -> tuple[str, str]:
    """(REPOSITORY, TAG) columns as `docker images` prints them."""
    r = parse(canonical)
    return r.familiar_repository, r.tag or DEFAULT_TAG


def id_prefix(ref: str) -> str | None:
    """The hex part if `ref` could be an image id or id prefix, else None."""
    m = _HEXID.match(ref)
    return m.group(1) if m else None
