"""`pull`: manifest (index -> platform) -> config -> layers (parallel, verified) -> one store commit.

Every blob is checked twice: the compressed bytes against the manifest's descriptor, then the
uncompressed tar against the config's diff_id (LayerStore.ingest). Downloads are staged in the
store's tmp/ and only verified layers enter blobs/; the image itself is committed last, so a
failure leaves no image and no unverified blob (finished layers stay, keyed by diff_id, and a
retry reuses them).
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from nsbox.image import reference
from nsbox.image.registry import manifest as M
from nsbox.image.registry.client import RegistryClient, RegistryError
from nsbox.image.registry.progress import Progress
from nsbox.runtime.errors import InvalidArgument, NotFound, NsboxError

WORKERS = 3   # docker's max-concurrent-downloads default
_CANCEL = threading.Event()   # set on Ctrl-C: workers stop at their next chunk instead of finishing
_CHUNK = 1 << 20


@dataclass
class PullOptions:
    platform: str | None = None
    quiet: bool = False
    tls_verify: bool | None = None
    cert_dir: str | None = None
    out: object = None
    workers: int = WORKERS
    print_name: bool = False      # docker pull's last line: the fully qualified reference


def auth_path(paths) -> str:
    return os.path.join(paths.root, "auth.json")


def make_client(paths, domain: str, scopes: list[str], tls_verify=None, cert_dir=None) -> RegistryClient:
    from nsbox.image.registry.auth import AuthFile
    creds = AuthFile(auth_path(paths)).get(domain)
    return RegistryClient(domain, creds=creds, tls_verify=tls_verify, cert_dir=cert_dir, scopes=scopes)


def fetch_manifest(client: RegistryClient, repo: str, ref: str, expect: str | None = None) -> M.Manifest:
    r = client.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": M.ACCEPT})
    raw = r.body(M.MAX_MANIFEST)
    m = M.parse(raw, r.headers.get("Content-Type", ""))
    if expect and m.digest != expect:
        raise RegistryError(f"manifest digest mismatch: expected {expect}, got {m.digest}")
    return m


def fetch_blob_bytes(client: RegistryClient, repo: str, desc: M.Descriptor, limit: int = 64 << 20) -> bytes:
    if desc.size > limit:
        raise InvalidArgument(f"config blob {desc.digest} is too large ({desc.size} bytes)")
    r = client.request("GET", f"/v2/{repo}/blobs/{desc.digest}")
    try:
        data = r.body(limit)
    except (OSError, http.client.HTTPException) as e:
        raise RegistryError(f"error pulling config {desc.digest[7:19]}: {e}") from None
    if M.sha256(data) != desc.digest:
        raise RegistryError(f"digest mismatch for config blob: expected {desc.digest}, got {M.sha256(data)}")
    return data


def _download(client, repo: str, desc: M.Descriptor, tmp: str, task) -> None:
    """Stream one blob into `tmp`, hashing as it arrives; any shortfall or mismatch raises."""
    import hashlib
    h, n = hashlib.sha256(), 0
    short = desc.digest[7:19]
    r = client.request("GET", f"/v2/{repo}/blobs/{desc.digest}")
    try:
        with r, open(tmp, "wb") as out:
            buf = bytearray(_CHUNK)
            while True:
                if _CANCEL.is_set():
                    raise RegistryError("pull cancelled")
                k = r.readinto(buf)
                if not k:
                    break
                n += k
                if n > desc.size:
                    raise RegistryError(f"layer {short}: registry sent more than the {desc.size} bytes "
                                        f"the manifest declares")
                h.update(buf[:k])
                out.write(buf[:k])
                task.advance(k)
            out.flush()
            os.fsync(out.fileno())
    except (OSError, http.client.HTTPException) as e:
        raise RegistryError(f"layer {short}: download interrupted after {n} of {desc.size} bytes "
                            f"({type(e).__name__}{': ' + str(e) if str(e) else ''})") from None
    if n != desc.size:
        raise RegistryError(f"layer {short}: download interrupted: got {n} of {desc.size} bytes")
    got = "sha256:" + h.hexdigest()
    if got != desc.digest:
        raise RegistryError(f"digest mismatch for layer {short}: expected {desc.digest}, got {got}")


def _fetch_layer(client, store, repo: str, desc: M.Descriptor, diff_id: str, prog: Progress,
                 extract: bool) -> None:
    short = desc.digest[7:19]
    if store.layers.has_blob(diff_id):
        prog.task(short, desc.size, "Already exists").done("Already exists")
        return
    import tempfile
    task = prog.task(short, desc.size, "Downloading")
    from nsbox.image.leftovers import owned
    fd, tmp = tempfile.mkstemp(dir=store.layers.tmp, prefix=owned("pull-"))
    os.close(fd)
    try:
        _download(client, repo, desc, tmp, task)
        try:
            with open(tmp, "rb") as f:
                store.layers.ingest(f, expect=diff_id)
        except InvalidArgument as e:
            raise RegistryError(f"layer {short} does not match the image config: {e}") from None
        except (OSError, EOFError, ValueError) as e:
            raise RegistryError(f"layer {short}: cannot decompress: {e}") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    if extract:  # here, in the pool, rather than serially in commit_image
        task.status("Extracting")
        store.layers.ensure_extracted(diff_id)
    task.done("Pull complete")


def pull(paths, ref: str, opts: PullOptions | None = None):
    """Pull `ref` into the store -> the stored Image. Output follows `docker pull`."""
    from nsbox.image.registry.metadata import Metadata
    from nsbox.image.store import ImageStore
    opts = opts or PullOptions()
    out = opts.out or sys.stdout
    r = reference.parse(ref)
    want = M.parse_platform(opts.platform)
    store = ImageStore(paths)
    store.init()
    client = make_client(paths, r.domain, [f"repository:{r.path}:pull"], opts.tls_verify, opts.cert_dir)
    shown = r.familiar_repository + (f"@{r.digest}" if r.digest else f":{r.tag}")
    with Progress(opts.quiet, out) as prog:
        prog.line(f"{r.digest or r.tag}: Pulling from {r.path}")
        try:
            top = fetch_manifest(client, r.path, r.digest or r.tag, expect=r.digest)
        except NotFound:
            raise NotFound(f"manifest for {shown} not found: manifest unknown") from None
        except RegistryError as e:
            if e.status in (401, 403):
                raise RegistryError(f"pull access denied for {r.familiar_repository}, repository does not "
                                    f"exist or may require 'nsbox login': {e}") from None
            raise
        m = top
        if m.is_index:
            desc = M.select(m, want, shown)
            m = fetch_manifest(client, r.path, desc.digest, expect=desc.digest)
            if m.is_index:
                raise InvalidArgument("unsupported manifest: an index nested in an index")
        config_raw = fetch_blob_bytes(client, r.path, m.config)
        try:
            config = json.loads(config_raw)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(f"malformed image config {m.config.digest}") from None
        got = M.config_platform(config)
        if not top.is_index and opts.platform and (got.os, got.architecture) != (want.os, want.architecture):
            raise InvalidArgument(f"image {shown} is {got}, which does not match the requested platform {want}")
        layers = m.layers
        if len(layers) != len(diff_ids):
            raise InvalidArgument(f"malformed image: manifest has {len(layers)} layers, config has "
                                  f"{len(diff_ids)} diff_ids")
        image_id = M.sha256(config_raw)
        names = [r.name] if r.tag and not r.digest else []
        with store.import_guard():  # GC must not collect finished layers before the commit
            existed = store.exists(image_id)
            up_to_date = existed and (not names or (store.exists(r.name) and store.lookup_id(r.name) == image_id))
            if not existed:
                _fetch_all(client, store, r.path, list(zip(layers, diff_ids)), prog, opts.workers)
            img = store.commit_image(config, names, raw=config_raw)
        meta = Metadata(store)
        try:
            meta.add_repo_digest(r.repository, top.digest, img.id)
            for desc, diff_id in zip(layers, diff_ids):
                if desc.media_type in (M.DOCKER_LAYER_GZIP, "application/vnd.oci.image.layer.v1.tar+gzip"):
                    meta.add_blobsum(diff_id, desc.digest, desc.size, r.repository)
        except OSError:
            pass  # a cache: losing it costs a recompression on push, nothing else
        prog.line(f"Digest: {top.digest}")
        prog.line(f"Status: {'Image is up to date' if up_to_date else 'Downloaded newer image'} for {shown}")
        if opts.print_name and not opts.quiet:
            prog.line(str(r))
    if opts.print_name and opts.quiet:
        print(str(r), file=out, flush=True)
    return img


def _fetch_all(client, store, repo: str, pairs: list, prog: Progress, workers: int) -> None:
    """Download in a small pool; let the others finish when one fails, so a retry reuses them."""
    from nsbox.image.graphdriver import OVERLAY
    extract = store.driver_name == OVERLAY
    seen, jobs = set(), []
    for desc, diff_id in pairs:
        if diff_id not in seen:
            seen.add(diff_id)
            jobs.append((desc, diff_id))
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = [pool.submit(_fetch_layer, client, store, repo, d, i, prog, extract) for d, i in jobs]
        try:
            for f in futs:
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - reported after the pool drains
                    errors.append(e)
        except BaseException:  # Ctrl-C: stop the workers, don't wait for whole layers
            _CANCEL.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if errors:
        e = errors[0]
        if isinstance(e, NsboxError):
            raise e
        raise RegistryError(f"pull failed: {e}") from e
