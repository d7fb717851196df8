"""Pure logic: challenges, platforms, hosts, the credentials file. No servers."""
from __future__ import annotations

import json
import os
import stat

import pytest

from nsbox.image.registry import auth, client, manifest as M
from nsbox.runtime.errors import InvalidArgument, NotFound


def test_parse_bearer_challenge_like_docker_hub():
    ch = auth.parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                               'scope="repository:library/busybox:pull"')
    assert len(ch) == 1 and ch[0].scheme == "bearer"
    assert ch[0].params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                            "scope": "repository:library/busybox:pull"}


def test_parse_basic_challenge():
    ch = auth.parse_challenges('Basic realm="Registry Realm"')
    assert ch[0].scheme == "basic" and ch[0].params["realm"] == "Registry Realm"
    assert auth.parse_challenges("") == []


@pytest.mark.parametrize("server,key", [
    ("docker.io", auth.DOCKER_HUB_KEY), ("https://index.docker.io/v1/", auth.DOCKER_HUB_KEY),
    ("localhost:5000", "localhost:5000"), ("https://quay.io", "quay.io"), ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
])
def test_server_key(server, key):
    assert auth.server_key(server) == key


def test_auth_file_roundtrip_mode_0600(tmp_path):
    f = auth.AuthFile(str(tmp_path / "root" / "auth.json"))
    assert f.get("localhost:5000") is None
    f.set("localhost:5000", auth.Credentials("u", "p:w"))
    f.set("docker.io", auth.Credentials("hub", "x"))
    assert stat.S_IMODE(os.stat(f.path).st_mode) == 0o600
    assert f.get("localhost:5000") == auth.Credentials("u", "p:w")
    data = json.load(open(f.path))
    assert set(data["auths"]) == {"localhost:5000", auth.DOCKER_HUB_KEY}
    assert f.remove("localhost:5000") and not f.remove("localhost:5000")
    assert f.get("index.docker.io").username == "hub"


@pytest.mark.parametrize("host,loop", [("localhost:5000", True), ("127.0.0.1", True), ("127.8.9.1:80", True),
                                       ("[::1]:5000", True), ("10.0.0.1:5000", False), ("quay.io", False)])
def test_loopback_is_insecure_by_default(host, loop):
    assert client.is_loopback(host) is loop


def test_docker_hub_api_host():
    assert client.api_host("docker.io") == "registry-1.docker.io"
    assert client.api_host("localhost:5000") == "localhost:5000"


def _index(*plats):
    j = {"schemaVersion": 2, "mediaType": M.OCI_INDEX, "manifests": [
        {"mediaType": M.OCI_MANIFEST, "digest": "sha256:" + f"{i:064x}", "size": 1, "platform": p}
        for i, p in enumerate(plats)]}
    return M.parse(json.dumps(j).encode(), "")


def test_platform_selection():
    idx = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
                 {"os": "linux", "architecture": "arm", "variant": "v7"},
                 {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 {"os": "linux", "architecture": "amd64"},
                 {"os": "windows", "architecture": "amd64"})
    pick = lambda s: M.select(idx, M.parse_platform(s), "x").digest[-1]
    assert pick("linux/amd64") == "3"
    assert pick("linux/arm64") == "2" and pick("linux/arm64/v8") == "2"
    assert pick("linux/arm/v6") == "0" and pick("linux/arm") == "1"
    assert pick("windows/amd64") == "4"
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        pick("linux/s390x")
    with pytest.raises(InvalidArgument):
        M.parse_platform("linux")


def test_schema1_and_unknown_manifests_are_refused():
    with pytest.raises(InvalidArgument, match="schema 1"):
        M.parse(b'{"schemaVersion": 1, "name": "x"}', "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(InvalidArgument):
        M.parse(b'{"schemaVersion": 2, "mediaType": "text/plain"}', "")
    m = M.parse(b'{"schemaVersion": 2, "config": {"digest": "sha256:' + b"a" * 64 + b'", "size": 2}, "layers": []}', "")
    assert m.media_type == M.OCI_MANIFEST and m.config.size == 2


def test_registry_package_import_is_cheap():
    import subprocess
    import sys
    code = ("import sys, nsbox.image.registry as r; "
            "print(sorted(m for m in sys.modules if m.startswith('nsbox.image.registry.') or m in ('ssl', 'http.client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
