"""Round trips against a real (plain HTTP, loopback) registry: nsbox push -> pull elsewhere -> run."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from nsbox_testlib import NSBOX_BIN

from .conftest import api, make_image, put_manifest, registry_blobs, upload

pytestmark = pytest.mark.slow


def test_push_busybox_then_pull_into_fresh_root_and_run(nsbox, fresh, registry, busybox_id):
    ref = f"{registry.host}/nsbox/busybox:1"
    nsbox.ok("tag", "busybox", ref)
    out = nsbox.ok("push", ref)
    assert f"The push refers to repository [{registry.host}/nsbox/busybox]" in out
    assert ": Pushed" in out and "1: digest: sha256:" in out
    # the registry holds a gzip layer, not the store's plain tar
    _, _, raw = api(registry, "GET", "/v2/nsbox/busybox/manifests/1",
                    headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    m = json.loads(raw)
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["digest"] == busybox_id
    with open(registry.blob_file(m["layers"][0]["digest"]), "rb") as f:
        assert f.read(2) == b"\x1f\x8b"

    again = nsbox.ok("push", ref)
    assert "Layer already exists" in again and ": Pushed" not in again

    out = fresh.ok("pull", ref)
    assert "Pull complete" in out and f"Status: Downloaded newer image for {ref}" in out
    assert out.strip().splitlines()[-1] == ref
    assert fresh.inspect(ref)["Id"] == busybox_id  # same config bytes -> same id
    assert fresh.ok("run", "--rm", "--network", "none", ref, "echo", "hello") == "hello\n"
    assert "Image is up to date" in fresh.ok("pull", ref)
    assert fresh.ok("pull", "-q", ref).strip() == ref


def test_cross_repo_mount_and_layer_reuse(nsbox, fresh, registry, paths):
    a = f"{registry.host}/mount/a:1"
    b = f"{registry.host}/mount/b:1"
    make_image(paths, a, [{"a.txt": b"a" * 1000}])
    nsbox.ok("push", a)
    nsbox.ok("tag", a, b)
    out = nsbox.ok("push", b)
    assert "Mounted from mount/a" in out or "Layer already exists" in out
    assert ": Pushed" not in out
    fresh.ok("pull", a)
    out = fresh.ok("pull", b)  # same image: nothing downloaded twice
    assert "Pull complete" not in out
    assert fresh.ok("run", "--rm", "--network", "none", b, "cat", "/a.txt") == "a" * 1000


def test_pull_by_digest_and_run_by_digest(nsbox, fresh, registry):
    ref = f"{registry.host}/bydigest:1"
    nsbox.ok("tag", "busybox", ref)
    out = nsbox.ok("push", ref)
    digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    by_digest = f"{registry.host}/bydigest@{digest}"
    out = fresh.ok("pull", by_digest)
    assert f"Digest: {digest}" in out
    assert out.strip().splitlines()[-1] == by_digest
    assert "bydigest" not in fresh.ok("images")  # a digest pull creates no tag (docker's rule)
    assert fresh.ok("run", "--rm", "--network", "none", by_digest, "echo", "ok") == "ok\n"
    bad = f"{registry.host}/bydigest@sha256:" + "0" * 64
    r = fresh("pull", bad)
    assert r.returncode == 125 and "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_implicit_pull_on_run_and_create_with_policies(nsbox, fresh, registry):
    ref = f"{registry.host}/implicit:1"
    nsbox.ok("tag", "busybox", ref)
    nsbox.ok("push", ref)
    r = fresh("run", "--rm", "--pull", "never", "--network", "none", ref, "true")
    assert r.returncode == 125 and "No such image" in r.stderr
    r = fresh("run", "--rm", "--network", "none", ref, "echo", "pulled")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pulled\n"
    assert f"Unable to find image '{ref}' locally" in r.stderr
    r = fresh("create", "--network", "none", ref, "true")  # present now: no pull output
    assert r.returncode == 0 and "Unable to find" not in r.stderr
    r = fresh("create", "--pull", "always", "--network", "none", ref, "true")
    assert r.returncode == 0 and "Image is up to date" in r.stderr
    r = fresh("run", "--rm", "--network", "none", f"{registry.host}/nosuch:1", "true")
    assert r.returncode == 125 and "No such image" in r.stderr and "manifest unknown" in r.stderr


def test_pull_image_pushed_by_skopeo_docker_and_oci(nsbox, fresh, registry, tmp_path):
    archive = str(tmp_path / "bb.tar")
    with open(archive, "wb") as f:
        subprocess.run([NSBOX_BIN, "save", "busybox"], env=nsbox.env, stdout=f,
                       check=True)
    for fmt, repo in (("v2s2", "skopeo/docker"), ("oci", "skopeo/oci")):
        subprocess.run(["skopeo", "copy", "--quiet", "--format", fmt, "--dest-tls-verify=false",
                        f"docker-archive:{archive}", f"docker://{registry.host}/{repo}:1"],
                       check=True, capture_output=True)
        _, h, raw = api(registry, "GET", f"/v2/{repo}/manifests/1", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
        want = "oci.image.manifest" if fmt == "oci" else "docker.distribution.manifest.v2"
        assert want in h["Content-Type"]
        ref = f"{registry.host}/{repo}:1"
        fresh.ok("pull", ref)
        assert fresh.ok("run", "--rm", "--network", "none", ref, "echo", fmt) == f"{fmt}\n"


def test_pull_zstd_oci_layers(nsbox, fresh, registry, tmp_path):
    archive = str(tmp_path / "bb.tar")
    with open(archive, "wb") as f:
        subprocess.run([NSBOX_BIN, "save", "busybox"], env=nsbox.env, stdout=f, check=True)
    r = subprocess.run(["skopeo", "copy", "--quiet", "--format", "oci", "--dest-compress-format", "zstd",
                        "--dest-tls-verify=false", f"docker-archive:{archive}",
                        f"docker://{registry.host}/skopeo/zstd:1"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this skopeo cannot write zstd: {r.stderr.strip()}")
    ref = f"{registry.host}/skopeo/zstd:1"
    fresh.ok("pull", ref)
    assert fresh.ok("run", "--rm", "--network", "none", ref, "echo", "z") == "z\n"


def _arm_variant(registry, repo: str, amd_manifest: dict) -> tuple[str, str, bytes]:
    """Upload a copy of the amd64 image whose config says arm64 -> (manifest digest, config digest, manifest)."""
    _, _, cfg_raw = api(registry, "GET", f"/v2/{repo}/blobs/{amd_manifest['config']['digest']}")
    cfg = json.loads(cfg_raw)
    cfg["architecture"], cfg["variant"] = "arm64", "v8"
    cfg_bytes = json.dumps(cfg).encode()
    cfg_digest = upload(registry, repo, cfg_bytes)
    m = dict(amd_manifest, config=dict(amd_manifest["config"], digest=cfg_digest, size=len(cfg_bytes)))
    body = json.dumps(m).encode()
    import hashlib
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    put_manifest(registry, repo, digest, body, m["mediaType"])
    return digest, cfg_digest, body


@pytest.mark.parametrize("index_type", ["application/vnd.oci.image.index.v1+json",
                                        "application/vnd.docker.distribution.manifest.list.v2+json"])
def test_multi_platform_index(nsbox, fresh, registry, busybox_id, index_type):
    import hashlib
    repo = "multi/" + index_type.split(".")[-2].replace("+", "")
    ref = f"{registry.host}/{repo}:amd"
    nsbox.ok("tag", "busybox", ref)
    nsbox.ok("push", ref)
    _, _, amd_raw = api(registry, "GET", f"/v2/{repo}/manifests/amd",
                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    amd = json.loads(amd_raw)
    arm_digest, arm_cfg, arm_raw = _arm_variant(registry, repo, amd)
    mt = amd["mediaType"]
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": mt, "digest": arm_digest, "size": len(arm_raw),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(amd_raw).hexdigest(), "size": len(amd_raw),
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    put_manifest(registry, repo, "multi", json.dumps(index).encode(), index_type)
    multi = f"{registry.host}/{repo}:multi"
    fresh.ok("pull", multi)
    assert fresh.inspect(multi)["Id"] == busybox_id
    fresh.ok("pull", "--platform", "linux/arm64", multi)
    got = fresh.inspect(multi)
    assert got["Id"] == arm_cfg and got["Architecture"] == "arm64"
    r = fresh("pull", "--platform", "linux/s390x", multi)
    assert r.returncode == 125 and "no matching manifest for linux/s390x" in r.stderr
    r = fresh("pull", "--platform", "bogus", multi)
    assert r.returncode == 125 and "invalid platform" in r.stderr


def test_push_chunked_upload(nsbox, fresh, registry, paths):
    ref = f"{registry.host}/chunked:1"
    big = os.urandom(300_000)  # random: gzip can't shrink it below the chunk size
    make_image(paths, ref, [{"big.bin": big}])
    out = nsbox.ok("push", ref, env={"NSBOX_PUSH_CHUNK_SIZE": "65536"})
    assert ": Pushed" in out
    fresh.ok("pull", ref)
    assert fresh.ok("run", "--rm", "--network", "none", ref, "wc", "-c", "/big.bin").split()[0] == "300000"


def test_bad_references_and_missing_images(nsbox, registry):
    r = nsbox("push", f"{registry.host}/never-tagged:1")
    assert r.returncode == 125 and "does not exist locally" in r.stderr
    r = nsbox("pull", f"{registry.host}/UPPER:1")
    assert r.returncode == 125 and "invalid reference format" in r.stderr
    r = nsbox("pull", f"127.0.0.1:{_closed_port()}/x:1")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1


def _closed_port() -> int:
    from .conftest import free_port
    return free_port()
