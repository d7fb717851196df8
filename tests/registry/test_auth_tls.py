"""login/logout, basic auth (htpasswd), bearer tokens (a real registry trusting a test token server),
and TLS with a test CA."""
from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess

import pytest

from .conftest import make_ca_and_cert

pytestmark = pytest.mark.slow


def _auth_file(n) -> dict:
    path = os.path.join(n.root, "auth.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def htpasswd_registry(start_registry, tmp_path):
    if not shutil.which("htpasswd"):
        pytest.skip("apt-get install apache2-utils")
    pw = tmp_path / "htpasswd"
    out = subprocess.run(["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, text=True, check=True).stdout
    pw.write_text(out)
    return start_registry(f"auth:\n  htpasswd:\n    realm: nsbox-test\n    path: {pw}\n")


def test_basic_auth_login_push_pull_logout(nsbox, fresh, htpasswd_registry):
    reg = htpasswd_registry
    ref = f"{reg.host}/private/bb:1"
    nsbox.ok("tag", "busybox", ref)
    r = nsbox("push", ref)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1

    r = nsbox("login", "-u", "alice", "-p", "wrong", reg.host)
    assert r.returncode == 125 and "login" in r.stderr
    assert not os.path.exists(os.path.join(nsbox.root, "auth.json"))

    r = nsbox("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    entry = _auth_file(nsbox)["auths"][reg.host]
    assert base64.b64decode(entry["auth"]).decode() == "alice:s3cret"
    assert "Pushed" in nsbox.ok("push", ref)

    r = fresh("pull", ref)
    assert r.returncode == 125 and "pull access denied" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    fresh.ok("login", "-u", "alice", "-p", "s3cret", reg.host)
    fresh.ok("pull", ref)
    assert fresh.ok("run", "--rm", "--network", "none", ref, "echo", "authed") == "authed\n"

    assert fresh.ok("logout", reg.host).strip() == f"Removing login credentials for {reg.host}"
    assert reg.host not in _auth_file(fresh).get("auths", {})
    assert "Not logged in" in fresh.ok("logout", reg.host)
    r = fresh("pull", "-q", ref)
    assert r.returncode == 125


def test_token_auth(nsbox, fresh, start_registry, token_server):
    ts = token_server({"bob": "hunter2"}, anonymous_pull=("public/",))
    reg = start_registry(ts.registry_yaml())
    private, public = f"{reg.host}/team/app:1", f"{reg.host}/public/app:1"
    for ref in (private, public):
        nsbox.ok("tag", "busybox", ref)
    r = nsbox("push", private)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr

    r = nsbox("login", "-u", "bob", "-p", "nope", reg.host)
    assert r.returncode == 125 and "incorrect username or password" in r.stderr
    nsbox.ok("login", "-u", "bob", "-p", "hunter2", reg.host)
    nsbox.ok("push", private)
    nsbox.ok("push", public)
    # the token request follows the challenge: service from it, scope for the repository
    pushes = [q for q in ts.requests if q["user"] == "bob" and q["scope"]]
    assert any("repository:team/app:pull,push" in q["scope"] for q in pushes)
    assert all(q["service"] == [ts.service] for q in ts.requests)

    fresh.ok("pull", public)  # anonymous token, pull-only scope
    r = fresh("pull", private)
    assert r.returncode == 125 and "pull access denied" in r.stderr
    fresh.ok("login", "-u", "bob", "--password-stdin", reg.host, input="hunter2")
    fresh.ok("pull", private)
    assert fresh.ok("run", "--rm", "--network", "none", private, "echo", "tok") == "tok\n"


def test_tls_with_test_ca(nsbox, fresh, start_registry, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca, cert, key = make_ca_and_cert(str(d))
    reg = start_registry(tls=(cert, key))
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    ref = f"{reg.host}/tls/bb:1"
    nsbox.ok("tag", "busybox", ref)
    nsbox.ok("push", "--cert-dir", str(certs), ref)
    # verification demanded without the CA: a one-line certificate error, not a fallback to HTTP
    r = fresh("pull", "--tls-verify", ref)
    assert r.returncode == 125 and "certificate" in r.stderr.lower() and len(r.stderr.strip().splitlines()) == 1
    r = fresh("pull", "--tls-verify=true", "--cert-dir", str(tmp_path / "nope"), ref)
    assert r.returncode == 125
    fresh.ok("pull", "--tls-verify=true", "--cert-dir", str(certs), ref)
    assert fresh.ok("run", "--rm", "--network", "none", ref, "echo", "tls") == "tls\n"
    # loopback is insecure by default (docker's rule): TLS without verification works too
    fresh.ok("rmi", ref)
    fresh.ok("pull", ref)


def test_plain_http_refused_when_tls_required(fresh, registry):
    r = fresh("pull", "--tls-verify=true", f"{registry.host}/whatever:1")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
