"""`push`: gzip each stored (uncompressed) layer, skip blobs the registry has (HEAD) or can mount,
upload the rest (monolithic PUT, or PATCH chunks + PUT for big ones), then the config and a
Docker schema2 manifest. The store keeps its uncompressed tars; only the compressed digest is
remembered (metadata.py) so the next push of the same layer costs one HEAD.
"""
from __future__ import annotations

import os
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from nsbox.image import reference
from nsbox.image.registry import manifest as M
from nsbox.image.registry.client import AuthError, RegistryClient, RegistryError
from nsbox.image.registry.progress import Progress
from nsbox.runtime.errors import InvalidArgument, NotFound, NsboxError

WORKERS = 3
# above this a blob goes up in PATCH chunks of this size (registries and proxies cap request bodies)
CHUNK = int(os.environ.get("NSBOX_PUSH_CHUNK_SIZE", 32 << 20))


@dataclass
class PushOptions:
    quiet: bool = False
    tls_verify: bool | None = None
    cert_dir: str | None = None
    out: object = None
    workers: int = WORKERS
    chunk_size: int = CHUNK


def _with_query(url: str, **params) -> str:
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


def blob_exists(client: RegistryClient, repo: str, digest: str) -> bool:
    try:
        client.request("HEAD", f"/v2/{repo}/blobs/{digest}").close()
        return True
    except NotFound:
        return False


def _try_mount(client: RegistryClient, repo: str, digest: str, src: str) -> str | None:
    """Cross-repository mount: 201 = done; 202 = the registry opened an upload instead (returned)."""
    r = client.request("POST", f"/v2/{repo}/blobs/uploads/?" + urllib.parse.urlencode({"mount": digest, "from": src}),
                       {"Content-Length": "0"}, b"", ok=(201, 202))
    loc = r.headers.get("Location", "")
    r.body(1 << 20)
    return None if r.status == 201 else client.resolve_location(loc)


def upload_blob(client: RegistryClient, repo: str, digest: str, size: int, open_body, chunk: int,
                location: str | None = None, task=None) -> None:
    """POST an upload session, then PUT ?digest= (monolithic) or PATCH chunks + empty PUT."""
    if location is None:
        r = client.request("POST", f"/v2/{repo}/blobs/uploads/", {"Content-Length": "0"}, b"", ok=(202,))
        location = client.resolve_location(r.headers.get("Location", ""))
        r.body(1 << 20)
        if not r.headers.get("Location"):
            raise RegistryError("registry opened an upload without a Location")
    octet = {"Content-Type": "application/octet-stream"}
    if size <= chunk:
        r = client.request("PUT", _with_query(location, digest=digest), {**octet, "Content-Length": str(size)},
                           open_body, ok=(201, 204))
        r.body(1 << 20)
        if task:
            task.advance(size)
        return
    with open_body() as f:
        off = 0
        while off < size:
            data = f.read(chunk)
            if not data:
                raise RegistryError(f"blob {digest[7:19]} shrank while uploading")
            r = client.request("PATCH", location, {**octet, "Content-Length": str(len(data)),
                                                   "Content-Range": f"{off}-{off + len(data) - 1}"},
                               data, ok=(202, 204))
            location = client.resolve_location(r.headers.get("Location", "") or location)
            r.body(1 << 20)
            off += len(data)
            if task:
                task.advance(len(data))
    client.request("PUT", _with_query(location, digest=digest), {**octet, "Content-Length": "0"}, b"",
                   ok=(201, 204)).body(1 << 20)


def compress_layer(store, diff_id: str) -> tuple[str, str, int]:
    """Stored tar -> gzip in tmp/ (mtime 0, so the same layer compresses to the same digest here)
    -> (tmp path, digest, size)."""
    import gzip
    import hashlib
    import tempfile
    from nsbox.image.leftovers import owned
    fd, tmp = tempfile.mkstemp(dir=store.layers.tmp, prefix=owned("push-"))
    h = hashlib.sha256()

    class Hashing:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            h.update(b)
            self.n += len(b)
            return self.f.write(b)

        def flush(self):
            self.f.flush()

    try:
        with os.fdopen(fd, "wb") as raw, open(store.layers.blob_path(diff_id), "rb") as src:
            hw = Hashing(raw)
            with gzip.GzipFile(fileobj=hw, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
        return tmp, "sha256:" + h.hexdigest(), hw.n
    except BaseException:
        os.unlink(tmp)
        raise


def _push_layer(client, store, meta, r, diff_id: str, prog: Progress, opts: PushOptions) -> tuple[str, int]:
    short = diff_id[7:19]
    known = meta.blobsum(diff_id)
    if known:
        if blob_exists(client, r.path, known["digest"]):
            prog.task(short, known["size"], "Layer already exists").done("Layer already exists")
            return known["digest"], known["size"]
        for src in known.get("repos", []):
            sr = reference.parse(src)
            if sr.domain == r.domain and sr.path != r.path:
                try:
                    loc = _try_mount(client, r.path, known["digest"], sr.path)
                except (RegistryError, NotFound):
                    continue
                if loc is None:
                    prog.task(short, known["size"], "Mounting").done(f"Mounted from {sr.path}")
                    return known["digest"], known["size"]
                client.request("DELETE", loc, ok=(204, 404, 405)).body()  # cancel the session it opened
                break
    task = prog.task(short, 0, "Preparing")
    tmp, digest, size = compress_layer(store, diff_id)
    try:
        task.status("Pushing", size)
        if blob_exists(client, r.path, digest):
            task.done("Layer already exists")
        else:
            upload_blob(client, r.path, digest, size, lambda: open(tmp, "rb"), opts.chunk_size, task=task)
            task.done("Pushed")
    finally:
        os.unlink(tmp)
    try:
        meta.add_blobsum(diff_id, digest, size, r.repository)
    except OSError:
        pass
    return digest, size


def push(paths, ref: str, opts: PushOptions | None = None) -> str:
    """Push the stored image `ref` -> the manifest digest. Output follows `docker push`."""
    from nsbox.image.registry.metadata import Metadata
    from nsbox.image.registry.pull import make_client
    from nsbox.image.store import ImageStore
    opts = opts or PushOptions()
    out = opts.out or sys.stdout
    r = reference.parse(ref)
    if r.digest:
        raise InvalidArgument(f"cannot push a digest reference: {ref}")
    store = ImageStore(paths)
    try:
        img = store.resolve(ref)
    except NotFound:
        raise NotFound(f"An image does not exist locally with the tag: {r.familiar_repository}") from None
    meta = Metadata(store)
    scopes = [f"repository:{r.path}:pull,push"]
    for d in img.layers:  # mount sources need pull access in the same token
        for src in (meta.blobsum(d) or {}).get("repos", []):
            sr = reference.parse(src)
            if sr.domain == r.domain and sr.path != r.path and f"repository:{sr.path}:pull" not in scopes:
                scopes.append(f"repository:{sr.path}:pull")
    client = make_client(paths, r.domain, scopes, opts.tls_verify, opts.cert_dir)
    with Progress(opts.quiet, out) as prog:
        prog.line(f"The push refers to repository [{r.repository}]")
        try:
            client.authenticate_now()
        except RegistryError as e:
            raise RegistryError(f"push access denied for {r.familiar_repository}: {e}") from None
        with store.import_guard():
            try:
                layers = _push_layers(client, store, meta, r, img.layers, prog, opts)
            except AuthError as e:
                raise AuthError(f"push access denied for {r.familiar_repository}: {e} "
                                f"(nsbox login {r.domain}?)") from None
            config_path = store.layers.blob_path(img.id)
            config_size = os.path.getsize(config_path)
            if not blob_exists(client, r.path, img.id):
                upload_blob(client, r.path, img.id, config_size, lambda: open(config_path, "rb"), opts.chunk_size)
        body = M.build_docker_manifest(img.id, config_size, layers)
        try:
            resp = client.request("PUT", f"/v2/{r.path}/manifests/{r.tag}",
                                  {"Content-Type": M.DOCKER_MANIFEST, "Content-Length": str(len(body))}, body,
                                  ok=(200, 201, 202))
        except RegistryError as e:
            raise RegistryError(f"pushing manifest for {r.familiar}: {e}") from None
        resp.body(1 << 20)
        digest = M.sha256(body)
        try:
            meta.add_repo_digest(r.repository, digest, img.id)
        except OSError:
            pass
        prog.line(f"{r.tag}: digest: {digest} size: {len(body)}")
    return digest


def _push_layers(client, store, meta, r, diff_ids: list[str], prog, opts) -> list[tuple[str, int]]:
    errors: list[BaseException] = []
    results: dict[str, tuple[str, int]] = {}
    uniq = list(dict.fromkeys(diff_ids))
    with ThreadPoolExecutor(max_workers=max(1, opts.workers)) as pool:
        futs = {d: pool.submit(_push_layer, client, store, meta, r, d, prog, opts) for d in uniq}
        for d, f in futs.items():
            try:
                results[d] = f.result()
            except BaseException as e:  # noqa: BLE001 - first error reported once the pool drains
                errors.append(e)
    if errors:
        if isinstance(errors[0], NsboxError):
            raise errors[0]
        raise RegistryError(f"push failed: {errors[0]}") from errors[0]
    return [results[d] for d in diff_ids]
