"""A container's record on disk: its config (what it is) and its state (what it is doing).

config.json is written once at create (and on rename); state.json changes with the lifecycle
and is always replaced atomically under the container's lock.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from nsbox.runtime.errors import NotFound
from nsbox.runtime.fsutil import ZERO_TIME, disk_full, locked, read_json, write_json
from nsbox.runtime.paths import Paths

# docker's states
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")


@dataclass
class ContainerState:
    Status: str = CREATED
    Pid: int = 0
    PidStart: int = 0          # /proc/PID/stat starttime: tells our PID 1 from a recycled pid
    MonitorPid: int = 0
    MonitorStart: int = 0
    ExitCode: int = 0
    Error: str = ""
    OOMKilled: bool = False
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME
    RestartCount: int = 0
    ManuallyStopped: bool = False
    NetNS: str = ""            # netns file when nsbox made one
    Network: dict = field(default_factory=dict)   # NetworkStatus as a dict (network/)

    @property
    def running(self) -> bool:
        return self.Status in (RUNNING, PAUSED, RESTARTING)


def proc_starttime(pid: int) -> int:
    """Field 22 of /proc/PID/stat, or 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # the command name may contain spaces and parens: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] == b"Z":
        return 0  # a zombie is as good as gone
    return int(rest[19])


def alive(pid: int, start: int) -> bool:
    return pid > 0 and start > 0 and proc_starttime(pid) == start


class ContainerRecord:
    """Paths and load/save for one container."""

    def __init__(self, paths: Paths, cid: str):
        self.paths = paths
        self.id = cid
        self.dir = paths.container_dir(cid)
        self.run_dir = paths.run_dir(cid)
        self.create_fd: int | None = None  # the create lock, held while the record is half-made

    @property
    def config_path(self) -> str:
        return os.path.join(self.dir, "config.json")

    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.dir, "lock")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, f"{self.id}-json.log")

    @property
    def attach_path(self) -> str:
        return os.path.join(self.run_dir, "attach.sock")

    def exists(self) -> bool:
        return os.path.exists(self.config_path)

    def config(self) -> dict:
        return read_json(self.config_path)

    def save_config(self, cfg: dict) -> None:
        write_json(self.config_path, cfg)

    def lock(self):
        """The state lock. A record removed meanwhile (its own --rm raced us) is "No such container",
        not a raw ENOENT on the lock file."""
        if not os.path.isdir(self.dir):
            raise NotFound(f"No such container: {self.id}")
        return _record_lock(self)

    @property
    def start_lock_path(self) -> str:
        return os.path.join(self.dir, "start.lock")

    def start_lock(self):
        """Held by a CLI for the whole of `start` (not the state lock: the monitor needs that one);
        network reconciliation judges a container's objects under it (cleanup.claim_network_owner)."""
        return locked(self.start_lock_path)

    def load_state(self) -> ContainerState:
        try:
            data = read_json(self.state_path)
        except FileNotFoundError:
            return ContainerState()
        known = ContainerState.__dataclass_fields__
        return ContainerState(**{k: v for k, v in data.items() if k in known})

    def save_state(self, st: ContainerState) -> None:
        try:
            write_json(self.state_path, asdict(st))
        except FileNotFoundError:
            if os.path.isdir(self.dir):
                raise
            raise NotFound(f"No such container: {self.id}") from None

    @property
    def stop_marker(self) -> str:
        return os.path.join(self.dir, "stop-requested")

    def mark_stopped(self, st: ContainerState) -> None:
        """Record a manual stop/kill (the monitor must not restart the container). On a full disk the
        state cannot be rewritten; an empty marker file needs no data block and says the same."""
        st.ManuallyStopped = True
        if not self.try_save_state(st):
            try:
                os.close(os.open(self.stop_marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError:
                pass

    def manually_stopped(self, st: ContainerState) -> bool:
        return st.ManuallyStopped or os.path.exists(self.stop_marker)

    def clear_stopped(self, st: ContainerState) -> None:
        st.ManuallyStopped = False
        try:
            os.unlink(self.stop_marker)
        except FileNotFoundError:
            pass

    def try_save_state(self, st: ContainerState) -> bool:
        """save_state for steps that must go on with a full disk (kill, stop, rm, recording an exit):
        False when there was no room; the state is reconciled from the live processes anyway."""
        try:
            self.save_state(st)
            return True
        except OSError as e:
            if disk_full(e):
                return False
            raise


class _record_lock:
    """locked(lock_path), but ENOENT (the directory vanished between the check and the open) is
    NotFound too."""

    def __init__(self, rec: ContainerRecord):
        self.rec = rec
        self.cm = locked(rec.lock_path)

    def __enter__(self):
        try:
            return self.cm.__enter__()
        except FileNotFoundError:
            raise NotFound(f"No such container: {self.rec.id}") from None

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)
