"""Bad bytes and broken connections: a clear one-line error, no image, no unverified blob, and a
retry that reuses what had already been verified."""
from __future__ import annotations

import json
import os

import pytest

from .conftest import api, make_image

pytestmark = pytest.mark.slow


def _store_state(n) -> dict:
    img = os.path.join(n.root, "image")
    def ls(*p):
        try:
            return sorted(os.listdir(os.path.join(img, *p)))
        except FileNotFoundError:
            return []
    refs = {}
    try:
        with open(os.path.join(img, "refs.json")) as f:
            refs = json.load(f)
    except FileNotFoundError:
        pass
    return {"images": ls("images"), "blobs": ls("blobs", "sha256"), "tmp": ls("tmp"), "refs": refs}


def _manifest(registry, repo: str, tag: str) -> dict:
    _, _, raw = api(registry, "GET", f"/v2/{repo}/manifests/{tag}",
                    headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    return json.loads(raw)


def test_corrupted_blob_is_rejected_and_nothing_is_stored(nsbox, fresh, registry, paths):
    ref = f"{registry.host}/corrupt:1"
    make_image(paths, ref, [{"data.txt": b"precious " * 2000}])
    nsbox.ok("push", ref)
    m = _manifest(registry, "corrupt", "1")
    top = m["layers"][-1]
    path = registry.blob_file(top["digest"])
    with open(path, "r+b") as f:  # flip one byte in the gzip stream, size unchanged
        f.seek(top["size"] // 2)
        b = f.read(1)
        f.seek(top["size"] // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    r = fresh("pull", ref)
    assert r.returncode == 125
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "digest mismatch" in lines[0] and top["digest"] in lines[0], r.stderr
    st = _store_state(fresh)
    assert st["images"] == [] and st["refs"] == {} and st["tmp"] == []
    cfg = json.loads(api(registry, "GET", f"/v2/corrupt/blobs/{m['config']['digest']}")[2])
    bad_diff_id = cfg["rootfs"]["diff_ids"][-1]
    assert bad_diff_id[7:] not in st["blobs"]
    assert fresh("run", "--rm", "--pull", "never", "--network", "none", ref, "true").returncode == 125


def test_size_lie_in_manifest_is_rejected(nsbox, fresh, registry, busybox_id):
    """A manifest that declares fewer bytes than the blob holds: refused, nothing stored."""
    repo = "sizelie"
    nsbox.ok("tag", "busybox", f"{registry.host}/{repo}:ok")
    nsbox.ok("push", f"{registry.host}/{repo}:ok")
    m = _manifest(registry, repo, "ok")
    m["layers"][0]["size"] -= 10
    from .conftest import put_manifest
    put_manifest(registry, repo, "lie", json.dumps(m).encode(), m["mediaType"])
    r = fresh("pull", f"{registry.host}/{repo}:lie")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    st = _store_state(fresh)
    assert st["images"] == [] and st["tmp"] == []


def test_interrupted_pull_then_retry_reuses_finished_layers(nsbox, fresh, registry, paths, cut_proxy):
    ref = f"{registry.host}/interrupted:1"
    make_image(paths, ref, [{"small.txt": b"small"}, {"big.bin": os.urandom(1 << 20)}])
    nsbox.ok("push", ref)
    m = _manifest(registry, "interrupted", "1")
    big = max(m["layers"], key=lambda l: l["size"])
    proxy = cut_proxy(registry.port)
    proxy.cut[big["digest"]] = 1
    via = f"127.0.0.1:{proxy.port}/interrupted:1"
    r = fresh("pull", via)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "interrupted" in r.stderr and big["digest"][7:19] in r.stderr
    st = _store_state(fresh)
    assert st["images"] == [] and st["tmp"] == []
    cfg = json.loads(api(registry, "GET", f"/v2/interrupted/blobs/{m['config']['digest']}")[2])
    finished = [d for d, l in zip(cfg["rootfs"]["diff_ids"], m["layers"]) if l["digest"] != big["digest"]]
    assert all(d[7:] in st["blobs"] for d in finished)  # verified layers are kept for the retry

    proxy.requests.clear()
    out = fresh.ok("pull", via)
    assert "Downloaded newer image" in out
    fetched = [p for p in proxy.requests if "/blobs/" in p and p.startswith("GET")]
    assert any(big["digest"] in p for p in fetched)
    others = [l["digest"] for l in m["layers"] if l["digest"] != big["digest"]]
    assert not any(d in p for d in others for p in fetched), fetched
    assert fresh.ok("run", "--rm", "--network", "none", via, "wc", "-c", "/big.bin").split()[0] == str(1 << 20)


def test_server_error_gives_one_line(fresh, registry, cut_proxy):
    # a proxy in front of a port nothing listens on: every request fails at the proxy (502-ish reset)
    from .conftest import free_port
    r = fresh("pull", f"127.0.0.1:{free_port()}/nothing:1")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot reach registry" in r.stderr
