"""Registry credentials (`<root>/auth.json`, docker's config.json "auths" shape) and auth challenges.

    {"auths": {"localhost:5000": {"auth": base64("user:pass")}}}

Docker Hub's key is "https://index.docker.io/v1/", as in docker's own file, so a copied
~/.docker/config.json keeps working.
"""
from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def server_key(server: str) -> str:
    """`docker.io`, `index.docker.io`, `https://index.docker.io/v1/` -> the Hub key; else host[:port]."""
    s = server.strip()
    for p in ("https://", "http://"):
        if s.startswith(p):
            s = s[len(p):]
    s = s.split("/", 1)[0]
    if s in ("docker.io", "index.docker.io", "registry-1.docker.io", ""):
        return DOCKER_HUB_KEY
    return s


@dataclass
class Credentials:
    username: str
    password: str


class AuthFile:
    def __init__(self, path: str):
        self.path = path

    def _load(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except ValueError:
            from nsbox.runtime.errors import NsboxError
            raise NsboxError(f"{self.path}: invalid JSON") from None

    def _save(self, data: dict) -> None:
        # 0600 from the first byte: the file holds passwords in (reversible) base64
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.path)

    def get(self, server: str) -> Credentials | None:
        entry = (self._load().get("auths") or {}).get(server_key(server))
        if not entry or not entry.get("auth"):
            return None
        try:
            user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return Credentials(user, pw)

    def set(self, server: str, creds: Credentials) -> None:
        data = self._load()
        auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        data.setdefault("auths", {})[server_key(server)] = {"auth": auth}
        self._save(data)

    def remove(self, server: str) -> bool:
        data = self._load()
        if server_key(server) not in (data.get("auths") or {}):
            return False
        del data["auths"][server_key(server)]
        self._save(data)
        return True


@dataclass
class Challenge:
    scheme: str                      # "bearer" | "basic"
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`."""
    out: list[Challenge] = []
    # split on scheme tokens: a word followed by a space and a key=
    for m in re.finditer(r'(?:^|,)\s*([A-Za-z]+)\s+((?:[A-Za-z_][\w-]*\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)',
                         header or ""):
        params = {k.lower(): (q if q or not u else u) for k, q, u in _PARAM.findall(m.group(2))}
        out.append(Challenge(m.group(1).lower(), params))
    if not out and header and header.strip().lower() in ("basic", "bearer"):
        out.append(Challenge(header.strip().lower()))
    return out
