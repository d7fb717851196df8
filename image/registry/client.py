"""HTTP to one registry: scheme/TLS choice, the /v2/ ping, auth (anonymous, basic, bearer token), redirects.

One short-lived connection per request: downloads run in a small thread pool, and http.client
connections are not thread-safe; on loopback (the tests) and behind keep-alive-less CDNs the
handshake is cheap next to a layer.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field

from nsbox.image.registry.auth import Challenge, Credentials, parse_challenges
from nsbox.runtime.errors import NotFound, NsboxError

DOCKER_HUB_HOST = "registry-1.docker.io"
CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
TIMEOUT = 60.0
USER_AGENT = "nsbox/0.1 (+docker-compatible)"


class RegistryError(NsboxError):
    def __init__(self, msg: str, status: int = 0, code: str = ""):
        super().__init__(msg)
        self.status, self.code = status, code


class AuthError(RegistryError):
    pass


def api_host(domain: str) -> str:
    return DOCKER_HUB_HOST if domain in ("docker.io", "index.docker.io") else domain


def split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        h, _, rest = host[1:].partition("]")
        return h, int(rest[1:]) if rest.startswith(":") else None
    h, _, p = host.partition(":")
    return h, int(p) if p else None


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 are insecure (plain HTTP allowed) by default, like docker."""
    h, _ = split_host(host)
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _cert_files(host: str, cert_dir: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    """(CA files, [(client cert, key)]) from --cert-dir or certs.d/<host:port>, docker's layout."""
    dirs = [cert_dir] if cert_dir else [os.path.join(d, host) for d in CERTS_D]
    cas, pairs = [], []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            if cert_dir:
                raise NsboxError(f"cert dir {cert_dir}: no such directory") from None
            continue
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".crt"):
                cas.append(p)
            elif n.endswith(".cert") and os.path.exists(p[:-5] + ".key"):
                pairs.append((p, p[:-5] + ".key"))
    return cas, pairs


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    _resp: http.client.HTTPResponse
    _conn: http.client.HTTPConnection

    def read(self, n: int = -1) -> bytes:
        return self._resp.read() if n < 0 else self._resp.read(n)

    def readinto(self, b) -> int:
        return self._resp.readinto(b)

    def close(self) -> None:
        self._resp.close()
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def body(self, limit: int = 16 << 20) -> bytes:
        try:
            data = self._resp.read(limit + 1)
        finally:
            self.close()
        if len(data) > limit:
            raise RegistryError("registry response too large")
        return data


def error_text(data: bytes, status: int) -> tuple[str, str]:
    """The registry's {"errors": [{"code", "message"}]} -> (code, "message") or the HTTP reason."""
    try:
        errs = json.loads(data).get("errors") or []
        if errs:
            e = errs[0]
            return e.get("code", ""), (e.get("message") or e.get("code") or "").strip()
    except (ValueError, AttributeError):
        pass
    return "", f"{status} {http.client.responses.get(status, '')}".strip()


@dataclass
class RegistryClient:
    domain: str                          # as in the reference: "docker.io", "localhost:5000"
    creds: Credentials | None = None
    tls_verify: bool | None = None       # None: verify unless loopback (docker's default)
    cert_dir: str | None = None
    scopes: list[str] = field(default_factory=list)   # "repository:library/busybox:pull"
    host: str = ""
    scheme: str = ""
    _ctx: ssl.SSLContext | None = None
    _auth_header: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _challenge: Challenge | None = None

    def __post_init__(self):
        self.host = api_host(self.domain)

    # ------------------------------------------------------------------ transport
    def _tls_context(self) -> tuple[ssl.SSLContext, bool]:
        """-> (context, strict). Strict: a CA was configured or --tls-verify=true was given."""
        cas, pairs = _cert_files(self.domain if self.domain != "docker.io" else self.host, self.cert_dir)
        verify = self.tls_verify if self.tls_verify is not None else (bool(cas) or not is_loopback(self.host))
        ctx = ssl.create_default_context()
        for ca in cas:
            ctx.load_verify_locations(ca)
        for cert, key in pairs:
            ctx.load_cert_chain(cert, key)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx, verify

    def _connect(self, scheme: str, host: str) -> http.client.HTTPConnection:
        h, port = split_host(host)
        if os.environ.get("NSBOX_LOOPBACK_ONLY") == "1" and not is_loopback(h):
            # the test suite's guarantee: no registry traffic (not even a DNS lookup) leaves the machine
            raise RegistryError(f"refusing to contact {host}: NSBOX_LOOPBACK_ONLY=1 allows loopback registries only")
        if scheme == "https":
            return http.client.HTTPSConnection(h, port, timeout=TIMEOUT, context=self._ctx)
        return http.client.HTTPConnection(h, port, timeout=TIMEOUT)

    def _raw(self, method: str, url: str, headers: dict, body=None) -> Response:
        u = urllib.parse.urlsplit(url)
        conn = self._connect(u.scheme, u.netloc)
        path = u.path + ("?" + u.query if u.query else "")
        try:
            conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **headers})
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Response(resp.status, resp.headers, resp, conn)

    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def ping(self) -> None:
        """GET /v2/: pick https or (insecure hosts only) http, and remember the auth challenge."""
        if self.scheme:
            return
        ctx, strict = self._tls_context()
        self._ctx = ctx
        errors = []
        for scheme in ("https", "http"):
            if scheme == "http" and strict:
                break
            try:
                r = self._raw("GET", f"{scheme}://{self.host}/v2/", {})
            except ssl.SSLCertVerificationError as e:
                raise RegistryError(f"Get \"https://{self.host}/v2/\": tls: {e.verify_message or e}") from None
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{scheme}: {getattr(e, 'strerror', None) or e}")
                continue
            data = r.body()
            if r.status == 401:
                self._challenge = next(iter(parse_challenges(r.headers.get("WWW-Authenticate", ""))), None)
            elif r.status >= 400 and r.status != 404:
                errors.append(f"{scheme}: {error_text(data, r.status)[1]}")
                continue
            self.scheme = scheme
            return
        raise RegistryError(f"cannot reach registry {self.domain}: " + "; ".join(errors))

    # ------------------------------------------------------------------ auth
    def _basic(self) -> str | None:
        if not self.creds:
            return None
        return "Basic " + base64.b64encode(f"{self.creds.username}:{self.creds.password}".encode()).decode()

    def _fetch_token(self, ch: Challenge, scopes: list[str]) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise AuthError("bearer challenge without a realm")
        q = [("service", ch.params["service"])] if ch.params.get("service") else []
        q += [("scope", s) for s in scopes]
        if self.creds:
            q.append(("account", self.creds.username))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q)
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https"):
            raise AuthError(f"bad token realm {realm!r}")
        headers = {}
        if self._basic():
            headers["Authorization"] = self._basic()
        try:
            r = self._raw("GET", url, headers)
            data = r.body()
        except (OSError, http.client.HTTPException) as e:
            raise AuthError(f"token server {u.netloc}: {e}") from None
        if r.status in (401, 403):
            raise AuthError(f"unauthorized: incorrect username or password" if self.creds else
                            f"unauthorized: authentication required")
        if r.status != 200:
            raise AuthError(f"token server {u.netloc}: {error_text(data, r.status)[1]}")
        try:
            tok = json.loads(data)
            return tok.get("token") or tok["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise AuthError(f"token server {u.netloc}: malformed token response") from None

    def _authenticate(self, header: str, failed: str | None) -> bool:
        """Answer a 401; False if there is nothing new to try (the caller reports access denied)."""
        with self._lock:
            if self._auth_header != failed:
                return True  # another thread already refreshed it
            ch = next(iter(parse_challenges(header)), None) or self._challenge
            if ch is None:
                return False
            if ch.scheme == "basic":
                new = self._basic()
            elif ch.scheme == "bearer":
                scopes = list(self.scopes)
                if ch.params.get("scope"):
                    for s in ch.params["scope"].split(" "):
                        if s not in scopes:
                            scopes.append(s)
                new = "Bearer " + self._fetch_token(ch, scopes)
            else:
                return False
            if not new or new == failed:
                return False
            self._auth_header = new
            return True

    def authenticate_now(self) -> None:
        """Log in eagerly (login, and before uploads whose bodies are streams)."""
        self.ping()
        if self._challenge and not self._auth_header:
            self._authenticate("", None)

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path_or_url: str, headers: dict | None = None, body=None,
                ok: tuple[int, ...] = (200,), follow: bool = True) -> Response:
        """One API call with auth retries and redirects. `body`: bytes, or a callable -> fresh stream.
        Statuses not in `ok` raise RegistryError (AuthError for 401/403)."""
        self.ping()
        url = path_or_url if "://" in path_or_url else self.base_url() + path_or_url
        headers = dict(headers or {})
        for attempt in range(3):
            auth = self._auth_header
            h = dict(headers)
            if auth:
                h["Authorization"] = auth
            data = body() if callable(body) else body
            try:
                r = self._raw(method, url, h, data)
            except (OSError, http.client.HTTPException) as e:
                raise RegistryError(f"{method} {url}: {getattr(e, 'strerror', None) or e}") from None
            finally:
                if callable(body) and hasattr(data, "close"):
                    data.close()
            if r.status == 401 and attempt < 2:
                hdr = r.headers.get("WWW-Authenticate", "")
                r.body()
                if self._authenticate(hdr, auth):
                    continue
                raise AuthError("authentication required", 401)
            if follow and r.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                return self._follow(method, url, r)
            if r.status not in ok:
                raw = b"" if method == "HEAD" else r.body(1 << 20)
                r.close()
                code, msg = error_text(raw, r.status)
                cls = AuthError if r.status in (401, 403) else NotFound if r.status == 404 else RegistryError
                raise cls(msg, r.status, code) if cls is not NotFound else NotFound(msg)
            return r
        raise AuthError("authentication required", 401)

    def _follow(self, method: str, url: str, r: Response) -> Response:
        """Blob GETs are often redirected to a CDN/S3: no registry credentials go there."""
        for _ in range(5):
            loc = r.headers.get("Location", "")
            r.body(1 << 20)
            url = urllib.parse.urljoin(url, loc)
            same = urllib.parse.urlsplit(url).netloc == self.host
            h = {"Authorization": self._auth_header} if same and self._auth_header else {}
            try:
                r = self._raw(method, url, h)
            except (OSError, http.client.HTTPException) as e:
                raise RegistryError(f"{method} {url}: {e}") from None
            if r.status not in (301, 302, 303, 307, 308):
                if r.status >= 400:
                    raise RegistryError(error_text(r.body(1 << 20), r.status)[1], r.status)
                return r
        raise RegistryError(f"too many redirects for {url}")

    def resolve_location(self, loc: str) -> str:
        return urllib.parse.urljoin(self.base_url() + "/", loc)
