"""Real registries on loopback for the pull/push tests (Debian's docker-registry, distribution v2).

Every server here (registry, token server, cutting proxy) is started by a fixture and stopped by
its finalizer, by PID / by its own handle. Nothing listens anywhere but 127.0.0.1.
"""
from __future__ import annotations

import base64
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import pytest

from nsbox_testlib import NSBOX_BIN, wait_for

REGISTRY_BIN = shutil.which("docker-registry") or shutil.which("registry")
pytestmark = pytest.mark.skipif(REGISTRY_BIN is None, reason="apt-get install docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Registry:
    port: int
    data: str
    proc: subprocess.Popen
    scheme: str = "http"
    ca: str | None = None
    cert_dir: str | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blob_file(self, digest: str) -> str:
        hx = digest.split(":", 1)[1]
        return os.path.join(self.data, "docker/registry/v2/blobs/sha256", hx[:2], hx, "data")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(base: str, extra: str = "", tls: tuple[str, str] | None = None) -> Registry:
    port = free_port()
    data = os.path.join(base, "data")
    os.makedirs(data, exist_ok=True)
    cfg = os.path.join(base, "config.yml")
    tls_cfg = f"\n  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}" if tls else ""
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{port}\n  secret: nsbox-test{tls_cfg}\n{extra}")
    log = open(os.path.join(base, "registry.log"), "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", cfg], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    reg = Registry(port, data, proc, "https" if tls else "http")
    if not wait_for(lambda: proc.poll() is not None or _listening(port), timeout=30) or proc.poll() is not None:
        reg.stop()
        with open(os.path.join(base, "registry.log")) as f:
            raise RuntimeError("registry did not start:\n" + f.read())
    return reg


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = _start(str(tmp_path_factory.mktemp("registry")))
    yield reg
    reg.stop()


@pytest.fixture
def start_registry(tmp_path):
    """start_registry(extra_yaml="", tls=None) -> Registry; all are stopped after the test."""
    started: list[Registry] = []

    def start(extra: str = "", tls: tuple[str, str] | None = None) -> Registry:
        reg = _start(tempfile.mkdtemp(dir=tmp_path, prefix="reg-"), extra, tls)
        started.append(reg)
        return reg
    yield start
    for r in started:
        r.stop()


@pytest.fixture
def fresh(nsbox_env, nsbox):
    """A second, empty nsbox state root ("another machine") with the real CLI."""
    base = tempfile.mkdtemp(prefix="nsbox-reg-", dir="/var/tmp")
    env = dict(nsbox_env["env"], NSBOX_ROOT=os.path.join(base, "root"), NSBOX_RUNROOT=os.path.join(base, "run"))
    n = type(nsbox)(env)   # the root conftest's runner, pointed at the new root
    yield n
    ids = subprocess.run([NSBOX_BIN, "ps", "-aq", "--no-trunc"], env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run([NSBOX_BIN, "rm", "-f", *ids], env=env, capture_output=True, timeout=120)
    from nsbox.runtime.cleanup import purge_root
    from nsbox.runtime.paths import Paths
    purge_root(Paths(n.root, n.runroot))
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_id(nsbox_env):
    from nsbox.image.store import ImageStore
    return ImageStore(nsbox_env["paths"]).ensure_default("busybox").id


@pytest.fixture(autouse=True)
def _busybox(busybox_id):
    """Every test here pushes or builds on the session's default image: make sure it exists."""
    return busybox_id


def make_image(paths, name: str, layers: list[dict[str, bytes]]) -> str:
    """busybox + one layer per {path: content} dict, committed as `name` -> image id."""
    from nsbox.image.store import ImageStore
    st = ImageStore(paths)
    base = st.ensure_default("busybox")
    cfg = json.loads(json.dumps(base.config))
    with st.import_guard():
        for files in layers:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for p, data in sorted(files.items()):
                    ti = tarfile.TarInfo(p)
                    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
                    tar.addfile(ti, io.BytesIO(data))
            buf.seek(0)
            diff_id, _ = st.layers.ingest(buf)
            cfg["rootfs"]["diff_ids"].append(diff_id)
            cfg.setdefault("history", []).append({"created": cfg.get("created", ""), "created_by": "test layer"})
        return st.commit_image(cfg, [name]).id


def registry_blobs(reg: Registry) -> set[str]:
    root = os.path.join(reg.data, "docker/registry/v2/blobs/sha256")
    out = set()
    for d, _, files in os.walk(root):
        if "data" in files:
            out.add("sha256:" + os.path.basename(d))
    return out


# ------------------------------------------------------------------------------ raw API uploads
def api(reg: Registry, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    req = urllib.request.Request(f"http://{reg.host}{path}" if path.startswith("/") else path, data=body or None,
                                 method=method, headers=headers or {})
    if method in ("PUT", "POST") and not body:
        req.add_header("Content-Length", "0")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read()


def upload(reg: Registry, repo: str, data: bytes) -> str:
    import hashlib
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, h, _ = api(reg, "POST", f"/v2/{repo}/blobs/uploads/")
    loc = h["Location"]
    loc = loc if "://" in loc else f"http://{reg.host}{loc}"
    api(reg, "PUT", loc + ("&" if "?" in loc else "?") + f"digest={digest}", data,
        {"Content-Type": "application/octet-stream"})
    return digest


def put_manifest(reg: Registry, repo: str, ref: str, body: bytes, media_type: str) -> str:
    _, h, _ = api(reg, "PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})
    return h.get("Docker-Content-Digest", "")


# ------------------------------------------------------------------------------ a cutting proxy
@dataclass
class CutProxy:
    """HTTP proxy in front of a registry that drops the connection halfway through chosen blobs."""
    target: int
    cut: dict[str, int] = field(default_factory=dict)    # digest -> how many more GETs to cut
    requests: list[str] = field(default_factory=list)
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> "CutProxy":
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                proxy.requests.append(f"{self.command} {self.path}")
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                c = http.client.HTTPConnection("127.0.0.1", proxy.target, timeout=30)
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                digest = self.path.rsplit("/", 1)[-1]
                cutting = self.command == "GET" and "/blobs/" in self.path and proxy.cut.get(digest, 0) > 0
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if cutting:
                    proxy.cut[digest] -= 1
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def cut_proxy():
    made: list[CutProxy] = []

    def make(target: int) -> CutProxy:
        p = CutProxy(target).start()
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


# ------------------------------------------------------------------------------ TLS and token auth material
def openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_cert(d: str) -> tuple[str, str, str]:
    """-> (ca.crt, server.crt, server.key) for 127.0.0.1."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=nsbox test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return tuple(os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key"))


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """A docker-style token server: basic-authenticated GET /token?service=&scope= -> RS256 JWT
    (x5c header: the registry checks the chain against its rootcertbundle)."""
    dir: str
    users: dict[str, str]
    service: str = "nsbox-test-registry"
    issuer: str = "nsbox-test-issuer"
    anonymous_pull: tuple[str, ...] = ()
    requests: list[dict] = field(default_factory=list)
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def cert(self) -> str:
        return os.path.join(self.dir, "token.crt")

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _sign(self, data: bytes) -> bytes:
        p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(self.dir, "token.key")],
                           input=data, capture_output=True, check=True)
        return p.stdout

    def token(self, user: str | None, scopes: list[str]) -> str:
        import ssl
        with open(self.cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        access = []
        for s in scopes:
            typ, name, actions = s.split(":")[0], ":".join(s.split(":")[1:-1]), s.split(":")[-1].split(",")
            if user is None:
                actions = [a for a in actions if a == "pull" and name.startswith(self.anonymous_pull)] \
                    if self.anonymous_pull else []
            if actions:
                access.append({"type": typ, "name": name, "actions": actions})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 600, "nbf": now - 60,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        return signing + "." + _b64url(self._sign(signing.encode()))

    def start(self) -> "TokenServer":
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.crt",
                "-days", "2", "-subj", "/CN=nsbox token signer", cwd=self.dir)
        ts = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                import urllib.parse
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if ts.users.get(name) != pw:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = name
                ts.requests.append({"user": user, "scope": q.get("scope", []), "service": q.get("service", [])})
                body = json.dumps({"token": ts.token(user, q.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def registry_yaml(self) -> str:
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.service}\n"
                f"    issuer: {self.issuer}\n    rootcertbundle: {self.cert}\n")

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def token_server(tmp_path):
    servers: list[TokenServer] = []

    def make(users: dict[str, str], anonymous_pull: tuple[str, ...] = ()) -> TokenServer:
        d = tempfile.mkdtemp(dir=tmp_path, prefix="token-")
        t = TokenServer(d, users, anonymous_pull=anonymous_pull).start()
        servers.append(t)
        return t
    yield make
    for t in servers:
        t.stop()
