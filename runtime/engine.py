"""The engine: docker's lifecycle verbs on top of the store, the monitor and the init.

Like podman's libpod: the CLI calls these with parsed requests and formats what comes back;
nothing here prints. Each verb takes the container's lock only for its state transition,
never across slow work.
"""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass

from nsbox.runtime import state as S
from nsbox.runtime.cleanup import reconcile, remove
from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound, NsboxError
from nsbox.runtime.fsutil import now_iso, write_atomic, write_json
from nsbox.runtime.paths import Paths
from nsbox.runtime.specgen import ContainerRequest
from nsbox.runtime.state import ContainerRecord
from nsbox.runtime.store import ContainerStore


@dataclass
class Started:
    pid: int
    sync: object = None     # the sync socket, kept open until the CLI has attached


def parse_signal(value: str | int) -> int:
    if isinstance(value, int):
        return value
    v = str(value).strip().upper()
    if v.isdigit():
        n = int(v)
        if 0 < n < 65:
            return n
        raise InvalidArgument(f"invalid signal: {value}")
    if not v.startswith("SIG"):
        v = "SIG" + v
    try:
        return int(getattr(signal, v))
    except AttributeError:
        raise InvalidArgument(f"invalid signal: {value}") from None


class Engine:
    def __init__(self, paths: Paths):
        self.paths = paths
        self.store = ContainerStore(paths)

    # --- lookups -----------------------------------------------------------
    def get(self, ref: str) -> ContainerRecord:
        return self.store.get(ref)

    def state(self, rec: ContainerRecord) -> S.ContainerState:
        return reconcile(self.paths, rec)

    # --- create ------------------------------------------------------------
    def create(self, req: ContainerRequest, on_record=None) -> tuple[ContainerRecord, list[str]]:
        """Make the container (no process yet). Returns its record and warnings.

        `on_record(rec)` runs as soon as the record exists (run uses it to spawn the monitor early).
        """
        from nsbox.runtime.create import build_container
        return build_container(self, req, on_record)

    def run(self, req: ContainerRequest, attach: bool) -> tuple[ContainerRecord, list[str], int, object]:
        """create + start, with the monitor's start-up overlapping create's work.

        Returns (record, warnings, PID 1's host pid, the attach socket or None).
        """
        from nsbox.runtime import monitor
        early: dict = {}

        def spawn(rec: ContainerRecord) -> None:
            early["h"] = monitor.spawn(self.paths, rec.id, attach)

        try:
            rec, warnings = self.create(req, on_record=spawn)
        except BaseException:
            if "h" in early:
                early["h"].abort()
            raise
        pid, sock = self.start(rec, attach=attach, handle=early.get("h"))
        return rec, warnings, pid, sock

    # --- start -------------------------------------------------------------
    def start(self, rec: ContainerRecord, attach: bool = False, handle=None) -> tuple[int, object]:
        """Start a created or exited container; returns (PID 1's host pid, attach socket or None).

        With attach, the socket is connected before the container starts, so the caller sees all
        output from the first byte. `handle` is a monitor spawned earlier (see run).
        """
        with rec.start_lock():
            try:
                return self._start(rec, attach, handle)
            except BaseException:
                if handle is not None and handle.sync.fileno() != -1:
                    handle.abort()
                raise

    def _start(self, rec: ContainerRecord, attach: bool, handle) -> tuple[int, object]:
        from nsbox.runtime import monitor

        cfg = rec.config()
        prev = rec.load_state()
        if prev.Status == S.EXITED and S.alive(prev.MonitorPid, prev.MonitorStart):
            # the last monitor is still tearing down (cgroup, network): a new one must not overlap it
            self.wait(rec, timeout=30)
        with rec.lock():
            st = reconcile(self.paths, rec)
            if st.Status in (S.RUNNING, S.RESTARTING):
                if handle is not None:
                    handle.abort()
                return st.Pid, None
            if st.Status == S.PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if st.Status == S.REMOVING:
                raise Conflict(f"container {rec.id[:12]} is marked for removal and cannot be started")
            rec.clear_stopped(st)
            st.Error = ""
            rec.save_state(st)
        if handle is None:
            # spawn first: the monitor's interpreter starts while we set up namespaces and networks
            try:
                handle = monitor.spawn(self.paths, rec.id, attach)
            except OSError as e:
                raise NsboxError(f"starting the container monitor: {e}") from None
        if cfg.get("Pod"):
            from nsbox.runtime.pods import on_container_start  # pods: start the infra first (podman)
            on_container_start(self.paths, cfg)
        try:
            self._prepare_namespaces(rec, cfg)
        except BaseException:
            handle.abort()
            self._undo_network(rec)
            raise
        f = handle.sync.makefile("rb")
        try:
            handle.sync.sendall(b'{"go": true}\n')
            msg = self._sync_read(f)
        except OSError:
            msg = {}
        handle.sync.close()
        if "started" in msg:
            handle.reap_if_done()
            return int(msg["started"]), handle.attach
        # a failed start: let the monitor finish its cleanup (and --rm) before we answer
        if handle.attach is not None:
            handle.attach.close()
        handle.wait()
        err = msg.get("error") or "the container monitor died; see monitor.log"
        code = int(msg.get("code", 125))
        from nsbox.runtime.errors import CannotInvoke, CommandNotFound
        cls = {126: CannotInvoke, 127: CommandNotFound}.get(code, NsboxError)
        raise cls(err)

    @staticmethod
    def _sync_read(f) -> dict:
        line = f.readline()
        if not line:
            return {}
        try:
            return json.loads(line)
        except ValueError:
            return {}

    def _prepare_namespaces(self, rec: ContainerRecord, cfg: dict) -> None:
        """Resolve the namespaces a container joins: its netns file, another container's, a pod's."""
        spec = cfg["Spec"]
        mode = cfg["HostConfig"].get("NetworkMode", "bridge")
        changed = False
        for ns in spec["linux"]["namespaces"]:
            target = ns.get("nsbox.join")
            if not target:
                continue
            if target == "netns":
                ns["path"] = self._setup_network(rec, cfg)
            else:  # container:<id> (also how pod members reach their infra)
                other = self.store.get(target)
                ost = reconcile(self.paths, other)
                if ost.Status not in (S.RUNNING, S.PAUSED) or not ost.Pid:
                    what = "infra container" if cfg.get("Pod") else "container"
                    raise Conflict(f"cannot join {ns['type']} namespace of {what} {other.id[:12]}: it is not running")
                from nsbox.runtime.linux import NS_PROC_NAME
                ns["path"] = f"/proc/{ost.Pid}/ns/{NS_PROC_NAME[ns['type']]}"
            changed = True
        if changed:
            rec.save_config(cfg)
        if mode.startswith("container:") or cfg.get("Pod"):
            self._copy_peer_files(rec, cfg)

    def _copy_peer_files(self, rec: ContainerRecord, cfg: dict) -> None:
        """Containers sharing a netns share its hosts and resolv.conf (docker's container: mode)."""
        mode = cfg["HostConfig"].get("NetworkMode", "")
        peer = mode.split(":", 1)[1] if mode.startswith("container:") else None
        if not peer:
            return
        other = self.store.get(peer)
        for name in ("hosts", "resolv.conf"):
            src = os.path.join(other.dir, name)
            if os.path.exists(src):
                with open(src, "rb") as f:
                    data = f.read()
                dst = os.path.join(rec.dir, name)
                with open(dst, "wb") as f:  # in place: it may already be bind-mounted
                    f.write(data)

    def _setup_network(self, rec: ContainerRecord, cfg: dict) -> str:
        st = rec.load_state()
        if st.NetNS and os.path.exists(st.NetNS):
            return st.NetNS
        from nsbox.runtime.netglue import reconcile, setup_container  # lazy: pyroute2 lives behind this
        # what a kill -9 left half-made (ours or others'), reclaimed at the next bridge start-up
        from nsbox.runtime.cleanup import network_claim
        # mine: we hold its start lock and it has no live netns, so what it owns is its own leftover
        reconcile(self.paths, network_claim(self.paths), mine=rec.id)
        netns, status = setup_container(self.paths, rec.id, cfg)
        with rec.lock():
            st = rec.load_state()
            st.NetNS = netns
            st.Network = status
            rec.save_state(st)
        from nsbox.runtime.create import write_hosts
        write_hosts(self.paths, rec, cfg, status)
        return netns

    def _undo_network(self, rec: ContainerRecord) -> None:
        from nsbox.runtime.cleanup import release_network
        release_network(self.paths, rec)

    # --- stop / kill -------------------------------------------------------
    def kill(self, rec: ContainerRecord, sig: int = signal.SIGKILL, manual: bool = True) -> None:
        reconcile(self.paths, rec)  # before the lock: it may take the lock itself
        with rec.lock():
            st = rec.load_state()
            if st.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING):
                raise Conflict(f"Cannot kill container: {rec.id[:12]}: Container {rec.id} is not running")
            # the signal first: on a full disk the state write below fails, and that must not keep
            # the container alive. The monitor records the exit under this same lock, so it still
            # sees ManuallyStopped (and does not restart the container).
            if st.Status != S.RESTARTING and st.Pid and S.alive(st.Pid, st.PidStart):
                try:
                    os.kill(st.Pid, sig)
                except ProcessLookupError:
                    pass
            if manual:
                rec.mark_stopped(st)
        if st.Status == S.PAUSED and sig == signal.SIGKILL:
            self._thaw(rec)  # a frozen task cannot die until it is thawed

    def stop(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        cfg = rec.config()
        st = reconcile(self.paths, rec)
        if st.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING):
            return  # docker: stopping a stopped container succeeds
        if timeout is None:
            timeout = cfg["Config"].get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        sig = parse_signal(cfg["Config"].get("StopSignal") or "SIGTERM")
        with rec.lock():
            st = rec.load_state()
            rec.mark_stopped(st)  # never fatal: a full disk must not keep the container running
        if st.Status == S.RESTARTING:
            self.wait(rec, timeout=30)
            return
        if st.Status == S.PAUSED:
            self._thaw(rec)
        if timeout > 0 and S.alive(st.Pid, st.PidStart):
            try:
                os.kill(st.Pid, sig)
            except ProcessLookupError:
                pass
            if self._wait_pid_gone(st.Pid, st.PidStart, timeout):
                self.wait(rec, timeout=30)
                return
        if S.alive(st.Pid, st.PidStart):
            try:
                os.kill(st.Pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait(rec, timeout=30)

    @staticmethod
    def _wait_pid_gone(pid: int, start: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            if not S.alive(pid, start):
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return not S.alive(pid, start)

    def wait(self, rec: ContainerRecord, timeout: float | None = None) -> S.ContainerState:
        """Until the container is not running (nor restarting) and its monitor is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            if not rec.exists():
                return S.ContainerState(Status=S.EXITED)
            st = reconcile(self.paths, rec)
            if not rec.exists():
                return st
            done = st.Status in (S.EXITED, S.DEAD) or (st.Status == S.CREATED and not st.MonitorPid)
            if done and not S.alive(st.MonitorPid, st.MonitorStart):
                return st
            if deadline is not None and time.monotonic() > deadline:
                return st
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def restart(self, rec: ContainerRecord, timeout: int | None = None) -> int:
        self.stop(rec, timeout)
        return self.start(rec)[0]

    # --- pause -------------------------------------------------------------
    def _cgroup(self, rec: ContainerRecord):
        from nsbox.runtime.cgroups import get_driver
        return get_driver().open(rec.config()["Spec"]["linux"]["cgroupsPath"])

    def _thaw(self, rec: ContainerRecord) -> None:
        try:
            self._cgroup(rec).thaw()
        except OSError:
            pass

    def pause(self, rec: ContainerRecord) -> None:
        reconcile(self.paths, rec)  # before the lock: it takes the lock itself when it records an exit
        with rec.lock():
            st = rec.load_state()
            if st.Status == S.PAUSED:
                raise Conflict(f"Container {rec.id} is already paused")
            if st.Status != S.RUNNING:
                raise Conflict(f"Container {rec.id} is not running")
            self._cgroup(rec).freeze()
            st.Status = S.PAUSED
            rec.save_state(st)

    def unpause(self, rec: ContainerRecord) -> None:
        reconcile(self.paths, rec)  # before the lock: it takes the lock itself when it records an exit
        with rec.lock():
            st = rec.load_state()
            if st.Status != S.PAUSED:
                raise Conflict(f"Container {rec.id} is not paused")
            self._cgroup(rec).thaw()
            st.Status = S.RUNNING
            rec.save_state(st)

    # --- remove / rename ---------------------------------------------------
    def rm(self, rec: ContainerRecord, force: bool = False, volumes: bool = False) -> None:
        try:
            self._rm(rec, force, volumes)
        except (NotFound, FileNotFoundError):
            if os.path.isdir(rec.dir):
                raise
            # its own --rm (or another rm) removed it while we were at it: what was asked is done

    def _rm(self, rec: ContainerRecord, force: bool, volumes: bool) -> None:
        st = reconcile(self.paths, rec)
        if not rec.exists():
            return
        if st.Status in (S.RUNNING, S.PAUSED, S.RESTARTING):
            if not force:
                what = "paused" if st.Status == S.PAUSED else "running"
                raise Conflict(f"cannot remove container \"/{rec.config().get('Name', '').lstrip('/')}\": "
                               f"container is {what}: stop the container before removing or force remove")
            # -f: SIGKILL at once, no grace period (docker)
            try:
                self.kill(rec, signal.SIGKILL)
            except Conflict:
                pass
            self.wait(rec, timeout=30)
        if not rec.exists():
            return  # --rm got there first
        try:
            cfg = rec.config()
        except FileNotFoundError:
            return  # --rm got there between the check and the read
        remove(self.paths, rec, cfg, volumes=volumes)

    def rename(self, rec: ContainerRecord, new: str) -> None:
        from nsbox.runtime.names import valid_name
        new = new.lstrip("/")
        if not valid_name(new):
            raise InvalidArgument(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        with rec.lock():
            cfg = rec.config()
            old = cfg["Name"].lstrip("/")
            if old == new:
                raise Conflict("Renaming a container with the same name as its current name")
            self.store.reserve_name(new, rec.id)
            cfg["Name"] = "/" + new
            rec.save_config(cfg)
            self.store.release_name(old, rec.id)

    def prune(self) -> list[str]:
        removed = []
        for rec in self.store.all():
            try:
                st = reconcile(self.paths, rec)
                if rec.exists() and st.Status in (S.EXITED, S.CREATED, S.DEAD) and not S.alive(st.MonitorPid, st.MonitorStart):
                    self.rm(rec)
                    removed.append(rec.id)
            except (NotFound, Conflict, OSError):
                continue
        return removed

    # --- looking -----------------------------------------------------------
    def list(self, all_: bool = False) -> list[tuple[ContainerRecord, dict, S.ContainerState]]:
        out = []
        for rec in self.store.all():
            try:
                st = reconcile(self.paths, rec)
                if not rec.exists():
                    continue
                cfg = rec.config()
            except (OSError, ValueError):
                continue
            if all_ or st.Status in (S.RUNNING, S.PAUSED, S.RESTARTING):
                out.append((rec, cfg, st))
        out.sort(key=lambda t: t[1].get("Created", ""), reverse=True)
        return out

    def update_state(self, rec: ContainerRecord, **fields) -> None:
        with rec.lock():
            st = rec.load_state()
            for k, v in fields.items():
                setattr(st, k, v)
            rec.save_state(st)


__all__ = ["Engine", "parse_signal", "Started", "write_atomic", "write_json", "now_iso"]
