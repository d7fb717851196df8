"""Tearing down what a container holds once it has stopped for good, and removing it.

Used by the monitor after the last exit, by `rm`, and by reconciliation when a monitor died
(kill -9): every step is idempotent.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from nsbox.runtime import state as S
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord


def uses_nsbox_network(cfg: dict) -> bool:
    """bridge or a user network: nsbox made a netns, addresses and maybe DNAT rules for it.

    The spec says it best: a network namespace to be made by nsbox ("nsbox.join": "netns"). A pod's
    infra container has one (with the pod's ports); its members join the infra's instead.
    """
    namespaces = cfg.get("Spec", {}).get("linux", {}).get("namespaces")
    if namespaces is not None:
        return any(ns.get("type") == "network" and ns.get("nsbox.join") == "netns" for ns in namespaces)
    mode = cfg.get("HostConfig", {}).get("NetworkMode", "bridge")
    if cfg.get("Pod") and not cfg.get("IsInfra"):
        return False
    return not (mode in ("host", "none") or mode.startswith("container:"))


def release_network(paths: Paths, rec: ContainerRecord, cfg: dict | None = None) -> None:
    st = rec.load_state()
    if cfg is None:
        try:
            cfg = rec.config()
        except (OSError, ValueError):
            cfg = {}
    # no record is no proof: a CLI killed mid-setup leaves objects the state never heard of
    if not st.NetNS and not st.Network and not uses_nsbox_network(cfg):
        return
    # lazy: only bridge containers ever reach this import
    from nsbox.runtime.netglue import teardown
    teardown(paths, rec.id, st.Network)
    with rec.lock():
        st = rec.load_state()
        st.NetNS = ""
        st.Network = {}
        rec.try_save_state(st)


def _holds_network(rec: ContainerRecord) -> bool:
    """Running, paused or restarting, or its monitor still alive (it may be tearing down itself)."""
    if not rec.exists():
        return False
    st = rec.load_state()
    return st.Status in (S.RUNNING, S.PAUSED, S.RESTARTING) or S.alive(st.MonitorPid, st.MonitorStart)


@contextlib.contextmanager
def claim_network_owner(paths: Paths, cid: str) -> Iterator[bool]:
    """For network reconciliation: yields True when cid's network objects are garbage.

    A CLI holds the start lock for the whole of a start, from before it makes any network object
    until the state says running; so a start lock we cannot take means "starting: not garbage". When
    we can take it we keep it while the caller removes the objects: the container cannot start again
    (and make new ones that the removal would take) in between. Never blocks.
    """
    rec = ContainerRecord(paths, cid)
    try:
        fd = os.open(rec.start_lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        # never started by a CLI (the first start makes this file before any object), or gone
        yield not _holds_network(rec)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield not _holds_network(rec)
    finally:
        os.close(fd)


def network_claim(paths: Paths):
    return lambda cid: claim_network_owner(paths, cid)


def release_cgroup(cfg: dict) -> None:
    path = cfg.get("Spec", {}).get("linux", {}).get("cgroupsPath")
    if not path:
        return
    try:
        from nsbox.runtime.cgroups import get_driver
        get_driver().open(path).destroy()
    except (OSError, ImportError, LookupError):
        pass
    except Exception as e:  # NotFound and friends from the driver: nothing to destroy
        if type(e).__name__ not in ("NotFound", "CgroupError"):
            raise


def teardown(paths: Paths, rec: ContainerRecord, cfg: dict, cgroup_released: bool = False,
             later: list | None = None) -> None:
    """After the final exit: network, cgroup, and --rm. See remove() for `later`."""
    release_network(paths, rec, cfg)
    if not cgroup_released:
        release_cgroup(cfg)
    if cfg.get("IsInfra"):
        from nsbox.runtime.pods import on_infra_exit  # the pod's namespaces died: stop its members
        on_infra_exit(paths, cfg)
    if cfg.get("HostConfig", {}).get("AutoRemove"):
        remove(paths, rec, cfg, volumes=True, cgroup_released=True, later=later)


def remove(paths: Paths, rec: ContainerRecord, cfg: dict, volumes: bool = False, cgroup_released: bool = False,
           later: list | None = None) -> None:
    """Release everything and forget the record.

    With `later` (the monitor's --rm), the record vanishes at once (its directory is renamed out of
    the store) and deleting its files, the writable layer included, is appended to `later` for
    after the exit code has gone out.
    """
    from nsbox.runtime.store import ContainerStore
    with rec.lock():
        st = rec.load_state()
        st.Status = S.REMOVING
        rec.try_save_state(st)  # removal needs no free space, and must work on a full disk
    release_network(paths, rec, cfg)
    if not cgroup_released:
        release_cgroup(cfg)
    if later is None:
        try:
            from nsbox.image.store import ImageStore
            ImageStore(paths).release_rootfs(rec.id, rec.dir)
        except ImportError:
            pass
    from nsbox.runtime.userns import Allocator  # its --userns auto range goes back to the pool
    Allocator(paths.root).release(rec.id)
    if volumes:
        from nsbox.runtime.volumes import VolumeStore
        vs = VolumeStore(paths)
        for m in cfg.get("Mounts", []):
            if m.get("Type") == "volume" and m.get("Anonymous"):
                try:
                    vs.remove(m["Name"], force=True)
                except Exception:
                    pass
    ContainerStore(paths).forget(rec, cfg.get("Name", "").lstrip("/"), later=later)


def reconcile(paths: Paths, rec: ContainerRecord) -> S.ContainerState:
    """Make the recorded state true: a container whose monitor and PID 1 are both gone has exited.

    The monitor may have been killed with -9; then nobody recorded the exit, so we do it here
    and release what the container held.
    """
    st = rec.load_state()
    if st.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING, S.CREATED, S.REMOVING):
        return st
    if st.Status == S.CREATED and not st.MonitorPid:
        return st
    if S.alive(st.MonitorPid, st.MonitorStart):
        return st
    if st.Status in (S.RUNNING, S.PAUSED) and S.alive(st.Pid, st.PidStart):
        return st  # PID 1 lives on without its monitor: still running, truthfully
    with rec.lock():
        st = rec.load_state()
        if S.alive(st.MonitorPid, st.MonitorStart) or (st.Pid and S.alive(st.Pid, st.PidStart)):
            return st
        if st.Status == S.REMOVING:
            pass
        elif st.Status != S.EXITED:
            st.Status = S.EXITED
            if st.StartedAt and st.FinishedAt.startswith("0001"):
                from nsbox.runtime.fsutil import now_iso
                st.FinishedAt = now_iso()
            st.ExitCode = st.ExitCode or 255
            st.Error = st.Error or "container monitor exited unexpectedly"
            st.Pid = 0
            rec.try_save_state(st)
    try:
        cfg = rec.config()
    except (OSError, ValueError):
        return st
    try:
        os.unlink(rec.attach_path)
    except OSError:
        pass
    teardown(paths, rec, cfg)
    return rec.load_state() if rec.exists() else st


def purge_root(paths: Paths) -> None:
    """Remove what a whole state root holds in the kernel: network objects and the cgroup parent.

    For test runs and `nsbox system reset`; containers must already be removed.
    """
    from nsbox.runtime.preload import stop_server
    stop_server(paths.runroot)  # the warm process that forks this runroot's commands and monitors
    try:
        from nsbox.runtime.netglue import purge
        purge(paths)
    except ImportError:
        pass
    from nsbox.runtime.cgroups import get_driver
    drv = get_driver()
    try:
        drv.open(paths.cgroup_parent).destroy()
    except Exception:
        pass
