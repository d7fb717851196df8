"""The container store: create, find (by id, id prefix or name), list, and forget containers.

Names are reserved with an O_EXCL file under names/, so two concurrent creates can never
get the same name, and no global lock is held across slow work.
"""
from __future__ import annotations

import os
import shutil
import time

from nsbox.runtime import state as S
from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.fsutil import rmtree
from nsbox.runtime.names import random_name, valid_name
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord


TRASH = ".removed-"  # containers/.removed-<id>: a record already gone, its files not yet deleted


class ContainerStore:
    def __init__(self, paths: Paths):
        self.paths = paths

    # --- names
    def _name_path(self, name: str) -> str:
        return os.path.join(self.paths.names, name)

    def reserve_name(self, name: str, cid: str) -> None:
        os.makedirs(self.paths.names, exist_ok=True)
        try:
            fd = os.open(self._name_path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = self._name_owner(name)
            raise Conflict(f'the container name "/{name}" is already in use by container "{owner}". '
                           "You have to remove (or rename) that container to be able to reuse that name.") from None
        try:
            os.write(fd, cid.encode())
        finally:
            os.close(fd)

    def _name_owner(self, name: str) -> str:
        try:
            with open(self._name_path(name)) as f:
                return f.read().strip()
        except OSError:
            return ""

    def release_name(self, name: str, cid: str) -> None:
        if self._name_owner(name) == cid:
            try:
                os.unlink(self._name_path(name))
            except FileNotFoundError:
                pass

    # --- records
    def new(self, name: str | None) -> tuple[ContainerRecord, str]:
        """Reserve an id and a name; make the container's directory."""
        cid = os.urandom(32).hex()  # not secrets: it imports hmac/base64, ~4 ms on every run
        if name:
            name = name.lstrip("/")
            if not valid_name(name):
                raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
            self.reserve_name(name, cid)
        else:
            for _ in range(20):
                name = random_name()
                try:
                    self.reserve_name(name, cid)
                    break
                except Conflict:
                    continue
            else:
                name = f"{random_name()}_{cid[:6]}"
                self.reserve_name(name, cid)
        rec = ContainerRecord(self.paths, cid)
        os.makedirs(rec.dir, mode=0o700)
        return rec, name

    def ids(self) -> list[str]:
        try:
            entries = os.listdir(self.paths.containers)
        except FileNotFoundError:
            return []
        for e in entries:
            if e.startswith(TRASH):
                self._sweep(os.path.join(self.paths.containers, e))
        return [e for e in entries if len(e) == 64 and os.path.exists(os.path.join(self.paths.containers, e, "config.json"))]

    @staticmethod
    def _sweep(trash: str) -> None:
        """A removed container's files whose deleting monitor died (after a minute: not racing it)."""
        try:
            if time.time() - os.lstat(trash).st_mtime > 60:
                shutil.rmtree(trash, ignore_errors=True)
        except OSError:
            pass

    def get(self, ref: str) -> ContainerRecord:
        """By full id, name, or unique id prefix (docker's order)."""
        if not ref:
            raise NotFound("No such container: ")
        ref = ref.lstrip("/")
        if len(ref) == 64 and os.path.exists(os.path.join(self.paths.containers, ref, "config.json")):
            return ContainerRecord(self.paths, ref)
        owner = self._name_owner(ref)
        if owner and os.path.exists(os.path.join(self.paths.containers, owner, "config.json")):
            return ContainerRecord(self.paths, owner)
        if all(c in "0123456789abcdef" for c in ref):
            matches = [i for i in self.ids() if i.startswith(ref)]
            if len(matches) == 1:
                return ContainerRecord(self.paths, matches[0])
            if len(matches) > 1:
                raise Conflict(f"multiple containers found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[ContainerRecord]:
        return [ContainerRecord(self.paths, i) for i in self.ids()]

    def forget(self, rec: ContainerRecord, name: str, later: list | None = None) -> None:
        """Remove the record itself (the caller has already stopped and cleaned up).

        With `later`, the directory leaves the store by one rename and its deletion is appended to
        `later`; a trash directory left by a crash in between is swept by ids()."""
        self.release_name(name, rec.id)
        rmtree(rec.run_dir)
        if later is None:
            rmtree(rec.dir)
            return
        trash = os.path.join(self.paths.containers, TRASH + rec.id)
        try:
            os.rename(rec.dir, trash)
            os.utime(trash)  # the sweep in ids() goes by age
        except FileNotFoundError:
            return
        later.append(lambda: shutil.rmtree(trash, ignore_errors=True))


def images_in_use(paths: Paths) -> dict[str, str]:
    """image id -> the id of one container using it (for rmi)."""
    used: dict[str, str] = {}
    for rec in ContainerStore(paths).all():
        try:
            used.setdefault(rec.config().get("Image", ""), rec.id)
        except (OSError, ValueError):
            continue
    return used


__all__ = ["ContainerStore", "images_in_use", "S"]
