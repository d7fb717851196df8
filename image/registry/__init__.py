"""Pull from and push to registries (OCI distribution API / Docker Registry HTTP API v2).

    from nsbox.image.registry import ensure_image
    img = ensure_image(paths, "localhost:5000/app:1", policy="missing")   # build's FROM, run, create

Importing this package costs nothing: everything below is imported on first use, so `nsbox run`
of an image that is already stored never loads HTTP, TLS or JSON-manifest code.
"""
from __future__ import annotations

POLICIES = ("always", "missing", "never")


def local_image(paths, ref: str):
    """The stored image `ref` names (name, id, or repo@digest learned by a pull), or None."""
    from nsbox.image.store import ImageStore
    from nsbox.runtime.errors import InvalidArgument, NotFound
    store = ImageStore(paths)
    try:
        return store.resolve(ref)
    except NotFound:
        pass
    except InvalidArgument:
        raise
    if "@" in ref:
        from nsbox.image import reference
        from nsbox.image.registry.metadata import Metadata
        r = reference.parse(ref)
        image_id = Metadata(store).image_for_digest(f"{r.repository}@{r.digest}")
        if image_id:
            try:
                return store.get(image_id)
            except NotFound:
                return None
    return None


def ensure_image(paths, ref: str, policy: str = "missing", platform: str | None = None,
                 quiet: bool = False, out=None):
    """The image for `ref`, pulled first when `policy` says so (docker's --pull always|missing|never).

    The embedded default image (busybox) is built locally instead of pulled when missing.
    Pull progress goes to `out` (default stderr, as `docker run` does).
    """
    import sys
    from nsbox.runtime.errors import InvalidArgument, NotFound
    if policy not in POLICIES:
        raise InvalidArgument(f"invalid pull policy {policy!r}: must be one of {', '.join(POLICIES)}")
    if policy != "always":
        img = local_image(paths, ref)
        if img is not None:
            return img
        from nsbox.image import reference
        from nsbox.image.store import DEFAULT_IMAGES, ImageStore
        if "@" not in ref and reference.normalize(ref) in DEFAULT_IMAGES:
            return ImageStore(paths).ensure_default(ref)  # embedded: built here, never pulled
        if policy == "never":
            raise NotFound(f"No such image: {ref}")
        out = out or sys.stderr
        if not quiet:
            shown = ref if "@" in ref else reference.parse(ref).familiar
            print(f"Unable to find image '{shown}' locally", file=out, flush=True)
    from nsbox.image.registry.pull import PullOptions, pull
    from nsbox.runtime.errors import NsboxError
    try:
        return pull(paths, ref, PullOptions(platform=platform, quiet=quiet, out=out or sys.stderr))
    except NsboxError as e:
        if policy == "always":
            raise
        raise NotFound(f"No such image: {ref} (pull failed: {e})") from None


def image_for_run(paths, ref: str, policy: str = "missing", platform: str | None = None) -> str:
    """The CLI hook for run/create: make sure the image is stored, and return a reference the
    runtime's store.resolve() understands (the image id when `ref` is a repo@digest)."""
    img = ensure_image(paths, ref, policy, platform)
    return img.id if "@" in ref else ref
