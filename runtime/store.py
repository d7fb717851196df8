"""The container store: create, find (by id, id prefix or name), list, and forget containers.

Names are reserved with a hard link under names/ (atomic, and never an empty file), so two
concurrent creates can never get the same name, and no global lock is held across slow work.

A record is half-made from the moment its directory appears until config.json is written. Its
creator holds an flock on <dir>/create.lock all that time (taken before the directory becomes
visible), so a half-made record whose lock is free was left by a creator that died (kill -9): ps,
any lookup by its name or id, and the next create with its name sweep it.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time

from nsbox.runtime import state as S
from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound
from nsbox.runtime.fsutil import rmtree, try_flock
from nsbox.runtime.names import random_name, valid_name
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord


TRASH = ".removed-"  # containers/.removed-<id>: a record already gone, its files not yet deleted
CREATING = ".creating-"  # containers/.creating-<id>: a directory not yet visible as a record
CREATE_LOCK = "create.lock"


class HalfMadeSwept(NotFound):
    """The reference named a record its dead creator left half-made; it has just been swept."""


class ContainerStore:
    def __init__(self, paths: Paths):
        self.paths = paths

    # --- names
    def _name_path(self, name: str) -> str:
        return os.path.join(self.paths.names, name)

    def reserve_name(self, name: str, cid: str) -> None:
        os.makedirs(self.paths.names, exist_ok=True)
        tmp = os.path.join(self.paths.names, f".tmp-{cid}")
        with open(tmp, "w") as f:
            f.write(cid)
        try:
            for attempt in range(2):
                try:
                    os.link(tmp, self._name_path(name))
                    return
                except FileExistsError:
                    owner = self._name_owner(name)
                    if attempt == 0 and owner != cid and self._reclaim_name(name, owner):
                        continue
                    raise Conflict(f'the container name "/{name}" is already in use by container "{owner}". '
                                   "You have to remove (or rename) that container to be able to reuse that "
                                   "name.") from None
        finally:
            os.unlink(tmp)

    def _reclaim_name(self, name: str, owner: str) -> bool:
        """A name held by a record that is gone or abandoned half-made: sweep it. True if freed."""
        if owner and os.path.isdir(self.paths.container_dir(owner)):
            return self.sweep_if_abandoned(owner)
        # no directory: the record was never made (older versions reserved the name first) or is gone
        if self._name_owner(name) == owner:
            try:
                os.unlink(self._name_path(name))
            except FileNotFoundError:
                pass
        return True

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
        """Make the container's directory (half-made, create-locked), then reserve a name.

        The caller finishes with done_creating(rec) once config.json is written (or the record
        removed); until then the record's create lock is held by this process."""
        cid = os.urandom(32).hex()  # not secrets: it imports hmac/base64, ~4 ms on every run
        if name:
            name = name.lstrip("/")
            if not valid_name(name):
                raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        rec = ContainerRecord(self.paths, cid)
        rec.create_fd = self._make_dir(rec)
        try:
            if name:
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
        except BaseException:
            shutil.rmtree(rec.dir, ignore_errors=True)
            self.done_creating(rec)
            raise
        return rec, name

    def _make_dir(self, rec: ContainerRecord) -> int:
        """The record's directory appears (by rename) with its create lock already held."""
        os.makedirs(self.paths.containers, exist_ok=True)
        tmp = os.path.join(self.paths.containers, CREATING + rec.id)
        os.mkdir(tmp, 0o700)
        fd = os.open(os.path.join(tmp, CREATE_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, rec.dir)
        except BaseException:
            os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return fd

    @staticmethod
    def done_creating(rec: ContainerRecord) -> None:
        fd = getattr(rec, "create_fd", None)
        if fd is not None:
            rec.create_fd = None
            os.close(fd)

    def sweep_if_abandoned(self, cid: str) -> bool:
        """Remove a half-made record whose creator is gone. True if it was swept (or is gone)."""
        d = self.paths.container_dir(cid)
        if os.path.exists(os.path.join(d, "config.json")):
            return False
        try:
            fd = try_flock(os.path.join(d, CREATE_LOCK))
            if fd is None:
                return False  # its creator is still at work
        except FileNotFoundError:
            fd = None  # made by an older version, which took no create lock
        try:
            if os.path.exists(os.path.join(d, "config.json")):
                return False  # completed meanwhile
            if not os.path.isdir(d):
                return True
            self._sweep_half_made(ContainerRecord(self.paths, cid))
            return True
        finally:
            if fd is not None:
                os.close(fd)

    def _sweep_half_made(self, rec: ContainerRecord) -> None:
        try:
            from nsbox.image.graphdriver import release
            release(rec.dir)  # its writable layer (nothing is mounted: rootfs mounts live in the container)
        except ImportError:
            pass
        try:
            names = os.listdir(self.paths.names)  # no config, so no name: find the reservations by owner
        except FileNotFoundError:
            names = []
        for n in names:
            if not n.startswith("."):
                self.release_name(n, rec.id)
        shutil.rmtree(rec.run_dir, ignore_errors=True)
        shutil.rmtree(rec.dir, ignore_errors=True)

    def ids(self) -> list[str]:
        try:
            entries = os.listdir(self.paths.containers)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            if e.startswith(TRASH):
                self._sweep(os.path.join(self.paths.containers, e))
            elif e.startswith(CREATING):
                self._sweep_creating(os.path.join(self.paths.containers, e))
            elif len(e) == 64:
                if os.path.exists(os.path.join(self.paths.containers, e, "config.json")):
                    out.append(e)
                else:
                    self.sweep_if_abandoned(e)
        return out

    @staticmethod
    def _sweep_creating(path: str) -> None:
        """A directory whose creator died before it became a record (no name was reserved yet)."""
        try:
            fd = try_flock(os.path.join(path, CREATE_LOCK))
        except OSError:
            return  # just made: the lock file comes next (a creator that died here leaves an empty dir)
        if fd is not None:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

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
        if len(ref) == 64 and os.path.isdir(os.path.join(self.paths.containers, ref)):
            if os.path.exists(os.path.join(self.paths.containers, ref, "config.json")):
                return ContainerRecord(self.paths, ref)
            if self.sweep_if_abandoned(ref):
                raise HalfMadeSwept(f"No such container: {ref}")
        owner = self._name_owner(ref)
        if owner:
            if os.path.exists(os.path.join(self.paths.containers, owner, "config.json")):
                return ContainerRecord(self.paths, owner)
            if os.path.isdir(self.paths.container_dir(owner)) and self.sweep_if_abandoned(owner):
                raise HalfMadeSwept(f"No such container: {ref}")
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

        The directory leaves the store by one rename, so of two removers racing (rm -f and the
        container's own --rm) exactly one wins and neither deletes under the other's feet. Its
        files are deleted at once, or with `later` appended to `later`; a trash directory left by
        a crash in between is swept by ids()."""
        self.release_name(name, rec.id)
        try:
            rmtree(rec.run_dir)
        except FileNotFoundError:
            pass  # the other remover's
        trash = os.path.join(self.paths.containers, TRASH + rec.id)
        try:
            os.rename(rec.dir, trash)
            os.utime(trash)  # the sweep in ids() goes by age
        except FileNotFoundError:
            return  # the other remover got there first
        if later is None:
            shutil.rmtree(trash, ignore_errors=True)
        else:
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
