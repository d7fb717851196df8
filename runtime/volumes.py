"""Named and anonymous volumes: a directory per volume under <root>/volumes/<name>/_data."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.fsutil import now_iso, read_json, rmtree, write_json
from nsbox.runtime.paths import Paths
from nsbox.runtime.specgen import VOLUME_NAME


@dataclass
class Volume:
    Name: str
    Mountpoint: str
    CreatedAt: str = ""
    Driver: str = "local"
    Labels: dict = field(default_factory=dict)
    Options: dict = field(default_factory=dict)
    Scope: str = "local"
    Anonymous: bool = False


class VolumeStore:
    def __init__(self, paths: Paths):
        self.paths = paths

    def _dir(self, name: str) -> str:
        return os.path.join(self.paths.volumes, name)

    def create(self, name: str = "", labels: dict | None = None, anonymous: bool = False) -> Volume:
        if not name:
            name, anonymous = os.urandom(32).hex(), True
        if not VOLUME_NAME.match(name):
            raise InvalidArgument(f'"{name}" includes invalid characters for a local volume name, '
                                  'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        d = self._dir(name)
        if os.path.exists(os.path.join(d, "meta.json")):
            return self.get(name)
        os.makedirs(os.path.join(d, "_data"), exist_ok=True)
        vol = Volume(Name=name, Mountpoint=os.path.join(d, "_data"), CreatedAt=now_iso(),
                     Labels=labels or {}, Anonymous=anonymous)
        write_json(os.path.join(d, "meta.json"), vol.__dict__)
        return vol

    def get(self, name: str) -> Volume:
        try:
            return Volume(**read_json(os.path.join(self._dir(name), "meta.json")))
        except FileNotFoundError:
            raise NotFound(f"no such volume: {name}") from None

    def list(self) -> list[Volume]:
        try:
            names = sorted(os.listdir(self.paths.volumes))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                out.append(self.get(n))
            except NotFound:
                continue
        return out

    def users(self, name: str) -> list[str]:
        from nsbox.runtime.store import ContainerStore
        out = []
        for rec in ContainerStore(self.paths).all():
            try:
                mounts = rec.config().get("Mounts", [])
            except (OSError, ValueError):
                continue
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in mounts):
                out.append(rec.id)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        self.get(name)
        users = self.users(name)
        if users and not force:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        rmtree(self._dir(name))

    def prune(self, all_: bool = False) -> list[str]:
        """docker: anonymous unused volumes by default, every unused one with --all."""
        removed = []
        for v in self.list():
            if (v.Anonymous or all_) and not self.users(v.Name):
                rmtree(self._dir(v.Name))
                removed.append(v.Name)
        return removed
