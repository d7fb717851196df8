"""Pods: a group of containers sharing namespaces held by one small infra (pause) container.

Like podman: `pod create` makes the pod record, its cgroup parent (which carries the pod's
--cpus/-m limits, inherited by every member) and the infra container; the infra starts with the
pod (or with the first member) and holds the shared ipc/net/uts (and, with --share pid, pid)
namespaces that members setns() into (create.py marks them `nsbox.join: <infra id>`).

On disk: `root/pods/<id>/pod.json` (Pod), `root/pods/names/<name>` (O_EXCL name reservation).
The shared /dev/shm is a tmpfs mounted on the host at `runroot/pods/<id>/shm` and bind-mounted
into the infra and every member (a shared ipc namespace needs a shared /dev/shm: POSIX shm lives
there, not in the ipc namespace).
"""
from __future__ import annotations

import base64
import io
import os
import platform
import secrets
import signal
import struct
import tarfile
import time
from dataclasses import asdict, dataclass, field

from nsbox.runtime import state as S
from nsbox.runtime.errors import Conflict, InvalidArgument, NotFound, NsboxError
from nsbox.runtime.fsutil import now_iso, read_json, rmtree, write_json
from nsbox.runtime.paths import Paths

PAUSE_IMAGE = "localhost/nsbox-pause:latest"
CATATONIT = "/usr/bin/catatonit"
SHARE_NAMES = {"ipc": "ipc", "net": "network", "network": "network", "uts": "uts", "pid": "pid"}
DEFAULT_SHARE = ["ipc", "net", "uts"]

# Fallback pause when catatonit is not installed: a 528-byte static x86-64 ELF, no libc, assembled
# once at development time (`as pause.S && ld -s -static -N`), so nothing needs a compiler here:
#     rt_sigprocmask(SIG_BLOCK, all)                ; blocked signals reach even a pid-ns init
#   loop: while wait4(-1, NULL, WNOHANG, NULL) > 0  ; reap orphans of the shared pid namespace
#     sig = rt_sigtimedwait({CHLD, TERM, INT})
#     if sig in (TERM, INT): exit_group(0)          ; Kubernetes' pause: SIGTERM -> exit 0
#     goto loop
# Resident size is ~16 kB.
PAUSE_ELF_B64 = (
    "f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAABABAAAAAAAAAAAAAEAAOAAB"
    "AEAABAADAAEAAAAHAAAAeAAAAAAAAAB4AEAAAAAAAHgAQAAAAAAAeAAAAAAAAAB4AAAAAAAAAAgA"
    "AAAAAAAAuA4AAAAx/0iNNVoAAAAx0kG6CAAAAA8FuD0AAABIx8f/////Mfa6AQAAAEUx0g8FSIXA"
    "f+O4gAAAAEiNPS8AAAAx9jHSQboIAAAADwVIg/gPdAhIg/gCdALrvbjnAAAAMf8PBQAAAAD//vv/"
    "/////wJAAQAAAAAAAC5zaHN0cnRhYgAudGV4dAAucm9kYXRhAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACwAAAAEA"
    "AAAHAAAAAAAAAHgAQAAAAAAAeAAAAAAAAABkAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAA"
    "ABEAAAABAAAAAgAAAAAAAADgAEAAAAAAAOAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAgAAAAAAAAA"
    "AAAAAAAAAAABAAAAAwAAAAAAAAAAAAAAAAAAAAAAAADwAAAAAAAAABkAAAAAAAAAAAAAAAAAAAAB"
    "AAAAAAAAAAAAAAAAAAAA")


@dataclass
class Pod:
    id: str
    name: str
    created: str
    hostname: str
    labels: dict = field(default_factory=dict)
    shared: list[str] = field(default_factory=lambda: list(DEFAULT_SHARE))  # podman's names: ipc, net, uts, pid
    infra_id: str = ""
    cgroup_parent: str = ""
    ports: list[str] = field(default_factory=list)
    resources: dict = field(default_factory=dict)      # the --cpus/-m flags, as given
    infra_image: str = PAUSE_IMAGE
    network: str = "bridge"

    def shared_types(self) -> set[str]:
        """Namespace types as the spec names them ("net" -> "network")."""
        return {SHARE_NAMES[s] for s in self.shared}

    @classmethod
    def from_dict(cls, d: dict) -> "Pod":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PodCreateOptions:
    name: str = ""
    publish: list[str] = field(default_factory=list)
    share: str | None = None
    hostname: str = ""
    infra_image: str = ""
    labels: list[str] = field(default_factory=list)
    cpus: str | None = None
    memory: str | None = None
    network: str = ""
    userns: str | None = None           # the infra's; None: the root's default


class PodStore:
    def __init__(self, paths: Paths):
        self.paths = paths
        self.dir = paths.pods
        self.names = os.path.join(paths.pods, "names")

    def _pod_dir(self, pid: str) -> str:
        return os.path.join(self.dir, pid)

    def shm_dir(self, pid: str) -> str:
        return os.path.join(self.paths.runroot, "pods", pid, "shm")

    def ids(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [e for e in entries if len(e) == 64 and os.path.exists(os.path.join(self.dir, e, "pod.json"))]

    def load(self, pid: str) -> Pod:
        return Pod.from_dict(read_json(os.path.join(self._pod_dir(pid), "pod.json")))

    def save(self, pod: Pod) -> None:
        os.makedirs(self._pod_dir(pod.id), exist_ok=True)
        write_json(os.path.join(self._pod_dir(pod.id), "pod.json"), asdict(pod))

    def get(self, ref: str) -> Pod:
        """By full id, name, or unique id prefix (like containers)."""
        if not ref:
            raise NotFound("no such pod: ")
        if len(ref) == 64 and ref in self.ids():
            return self.load(ref)
        try:
            with open(os.path.join(self.names, ref)) as f:
                owner = f.read().strip()
            if owner in self.ids():
                return self.load(owner)
        except OSError:
            pass
        if all(c in "0123456789abcdef" for c in ref):
            matches = [i for i in self.ids() if i.startswith(ref)]
            if len(matches) == 1:
                return self.load(matches[0])
            if len(matches) > 1:
                raise Conflict(f"more than one result for pod ID {ref}")
        raise NotFound(f"no pod with name or ID {ref} found: no such pod")

    def all(self) -> list[Pod]:
        out = []
        for i in self.ids():
            try:
                out.append(self.load(i))
            except (OSError, ValueError):
                continue  # removed concurrently
        return sorted(out, key=lambda p: p.created, reverse=True)

    def reserve(self, name: str, pid: str) -> None:
        os.makedirs(self.names, exist_ok=True)
        try:
            fd = os.open(os.path.join(self.names, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise Conflict(f"{name}: pod already exists") from None
        try:
            os.write(fd, pid.encode())
        finally:
            os.close(fd)

    def forget(self, pod: Pod) -> None:
        try:
            with open(os.path.join(self.names, pod.name)) as f:
                if f.read().strip() == pod.id:
                    os.unlink(os.path.join(self.names, pod.name))
        except OSError:
            pass
        rmtree(self._pod_dir(pod.id))
        rmtree(os.path.dirname(self.shm_dir(pod.id)))


# --- the infra image ----------------------------------------------------------

def _is_static_elf(data: bytes) -> bool:
    """No PT_INTERP program header: the binary runs alone in an otherwise empty image."""
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def pause_binary() -> tuple[bytes, list[str]]:
    """(the binary, its argv): catatonit -P when installed and static, else our tiny pause."""
    if os.path.exists(CATATONIT):
        with open(CATATONIT, "rb") as f:
            data = f.read()
        if _is_static_elf(data):  # a dynamic one would need its libc in the image
            return data, ["/catatonit", "-P"]
    if platform.machine() not in ("x86_64", "amd64"):
        raise NsboxError(f"no pause binary for the pod's infra container: install a static catatonit "
                         f"({CATATONIT}) or give --infra-image")
    return base64.b64decode(PAUSE_ELF_B64), ["/pause"]


def ensure_pause_image(images) -> str:
    """Build `localhost/nsbox-pause` on first use: one layer with just the pause binary."""
    if images.exists(PAUSE_IMAGE):
        return PAUSE_IMAGE
    data, argv = pause_binary()
    return build_pause_image(images, PAUSE_IMAGE, data, argv)


def build_pause_image(images, ref: str, data: bytes, argv: list[str]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("dev", "proc", "sys", "etc"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(ti)
        ti = tarfile.TarInfo(argv[0].lstrip("/"))
        ti.size, ti.mode, ti.mtime = len(data), 0o755, 0
        tar.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    cfg = {"Entrypoint": argv, "Cmd": [], "Env": [], "StopSignal": "SIGTERM",
           "Labels": {"io.nsbox.infra": "true"}}
    images.import_tar(buf, ref, source="nsbox pod infra", created="1970-01-01T00:00:00Z", config=cfg)
    return ref


# --- helpers ------------------------------------------------------------------

def _engine(paths: Paths):
    from nsbox.runtime.engine import Engine
    return Engine(paths)


def parse_share(value: str | None) -> list[str]:
    if value is None:
        return list(DEFAULT_SHARE)
    out: list[str] = []
    for part in [p.strip() for p in value.split(",") if p.strip()]:
        if part == "none":
            continue
        if part not in SHARE_NAMES:
            raise InvalidArgument(f"invalid kernel namespace to share: {part}: "
                                  "only ipc, net, uts and pid can be shared")
        part = "net" if part == "network" else part
        if part not in out:
            out.append(part)
    return out


def ensure_shm(paths: Paths, pod: Pod) -> str:
    """The pod's /dev/shm: a host tmpfs, mounted once (again after a reboot emptied runroot)."""
    d = PodStore(paths).shm_dir(pod.id)
    os.makedirs(d, exist_ok=True)
    if not os.path.ismount(d):
        from nsbox.runtime import linux as L
        L.RealSyscalls().mount("shm", d, "tmpfs", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC,
                               "mode=1777,size=65536k")
    return d


def release_shm(paths: Paths, pod: Pod) -> None:
    d = PodStore(paths).shm_dir(pod.id)
    if os.path.ismount(d):
        from nsbox.runtime import linux as L
        try:
            L.RealSyscalls().umount2(d, L.MNT_DETACH)
        except OSError:
            pass


def shm_mount(paths: Paths, pod: Pod) -> dict:
    """The spec mount that replaces a container's private /dev/shm (create.py adds it for members)."""
    return {"destination": "/dev/shm", "type": "bind", "source": PodStore(paths).shm_dir(pod.id),
            "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]}


def members(paths: Paths, pod: Pod, infra: bool = False) -> list:
    """The pod's containers (records), the infra one only if asked; oldest first."""
    eng = _engine(paths)
    out = []
    for rec in eng.store.all():
        try:
            cfg = rec.config()
        except (OSError, ValueError):
            continue
        if cfg.get("Pod") != pod.id:
            continue
        if rec.id == pod.infra_id and not infra:
            continue
        out.append((cfg.get("Created", ""), rec))
    return [r for _, r in sorted(out, key=lambda t: t[0])]


def _infra(paths: Paths, pod: Pod):
    from nsbox.runtime.state import ContainerRecord
    rec = ContainerRecord(paths, pod.infra_id)
    return rec if pod.infra_id and rec.exists() else None


# --- verbs --------------------------------------------------------------------

def create_pod(paths: Paths, opts: PodCreateOptions) -> tuple[Pod, list[str]]:
    from nsbox.image.store import ImageStore
    from nsbox.runtime.cgroups import get_driver
    from nsbox.runtime.names import random_name, valid_name
    from nsbox.runtime.specgen import ContainerRequest, parse_labels
    from nsbox.runtime.units import resources_from_flags

    store = PodStore(paths)
    shared = parse_share(opts.share)
    if opts.publish and "net" not in shared:
        raise InvalidArgument("you must share the network namespace (--share net) to publish ports on a pod")
    network = opts.network or "bridge"
    if network in ("host", "none") or network.startswith("container:"):
        raise InvalidArgument(f"--network {network} is not supported for pods")
    labels = parse_labels(opts.labels, [])
    # privileged=True: no device rules on the parent, the members carry their own
    res, warnings = resources_from_flags(cpus=opts.cpus, memory=opts.memory, privileged=True)
    pid = secrets.token_hex(32)
    name = opts.name
    if name:
        if not valid_name(name):
            raise InvalidArgument(f"invalid pod name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        store.reserve(name, pid)
    else:
        for _ in range(20):
            name = random_name()
            try:
                store.reserve(name, pid)
                break
            except Conflict:
                continue
        else:
            raise Conflict("could not pick a free pod name")
    pod = Pod(id=pid, name=name, created=now_iso(), hostname=opts.hostname or name, labels=labels,
              shared=shared, cgroup_parent=f"{paths.cgroup_parent}/pod-{pid[:12]}", ports=list(opts.publish),
              resources={k: v for k, v in (("cpus", opts.cpus), ("memory", opts.memory)) if v is not None},
              network=network)
    eng = _engine(paths)
    try:
        store.save(pod)
        cg = get_driver().create(pod.cgroup_parent, res)
        warnings += cg.warnings
        images = ImageStore(paths)
        pod.infra_image = opts.infra_image or ensure_pause_image(images)
        req = ContainerRequest(
            image=pod.infra_image, name=f"{pid[:12]}-infra", hostname=pod.hostname,
            network=network if "net" in shared else "none", publish=list(opts.publish),
            labels=[f"io.nsbox.pod={pid}"], userns=opts.userns)
        rec, w = eng.create(req)
        warnings += w
        pod.infra_id = rec.id
        # make it the pod's: its cgroup under the pod parent, its /dev/shm the pod's
        cfg = rec.config()
        cfg["Pod"] = pid
        cfg["IsInfra"] = True
        cfg["Spec"]["linux"]["cgroupsPath"] = f"{pod.cgroup_parent}/{rec.id}"
        if "ipc" in shared:
            cfg["Spec"]["mounts"].append(shm_mount(paths, pod))
        rec.save_config(cfg)
        store.save(pod)
        if "ipc" in shared:
            ensure_shm(paths, pod)
    except BaseException:
        try:
            remove_pod(paths, pod, force=True)
        except Exception:
            store.forget(pod)
        raise
    return pod, warnings


def pod_state(paths: Paths, pod: Pod) -> str:
    """podman's pod states from its containers' (the infra counts): Created, Running, Paused,
    Degraded (some running), Exited."""
    eng = _engine(paths)
    sts = []
    for rec in members(paths, pod, infra=True):
        try:
            sts.append(eng.state(rec).Status)
        except (OSError, ValueError):
            continue
    if not sts:
        return "Created"
    if all(s == S.RUNNING for s in sts):
        return "Running"
    if all(s == S.PAUSED for s in sts):
        return "Paused"
    if all(s == S.CREATED for s in sts):
        return "Created"
    if any(s in (S.RUNNING, S.PAUSED, S.RESTARTING) for s in sts):
        return "Degraded"
    return "Exited"


def ensure_infra(paths: Paths, pod: Pod, explicit: bool = False) -> None:
    """Start the infra if it is not running. A member start does this only for a pod that was
    never started or was stopped on purpose; an infra that died on its own needs `pod start`,
    since its members lost their namespaces with it."""
    eng = _engine(paths)
    rec = _infra(paths, pod)
    if rec is None:
        raise Conflict(f"pod {pod.name} has no infra container (it was removed); remove the pod and create it again")
    st = eng.state(rec)
    if st.Status in (S.RUNNING, S.PAUSED):
        return
    if not explicit and st.Status == S.EXITED and not st.ManuallyStopped:
        raise Conflict(f"the infra container of pod {pod.name} ({rec.id[:12]}) exited unexpectedly "
                       f"(exit code {st.ExitCode}); its namespaces are gone: run `nsbox pod start {pod.name}` "
                       f"(or `pod restart`) to start the pod again")
    if "ipc" in pod.shared:
        ensure_shm(paths, pod)
    eng.start(rec)


def on_container_start(paths: Paths, cfg: dict) -> None:
    """Engine hook, before a pod container's namespaces are resolved: members need a running
    infra, the infra needs the pod's /dev/shm (gone after a reboot empties runroot)."""
    if not cfg.get("Pod"):
        return
    try:
        pod = PodStore(paths).get(cfg["Pod"])
    except NotFound:
        raise Conflict(f"pod {cfg['Pod'][:12]} of this container no longer exists") from None
    if cfg.get("IsInfra"):
        if "ipc" in pod.shared:
            ensure_shm(paths, pod)
        return
    ensure_infra(paths, pod)
    if "net" in pod.shared and cfg.get("Id"):
        _copy_infra_files(paths, pod, cfg["Id"])


def _copy_infra_files(paths: Paths, pod: Pod, cid: str) -> None:
    """Members share the infra's netns, so its /etc/hosts and resolv.conf too (podman does this)."""
    infra = _infra(paths, pod)
    if infra is None:
        return
    for name in ("hosts", "resolv.conf"):
        src = os.path.join(infra.dir, name)
        try:
            with open(src, "rb") as f:
                data = f.read()
            with open(os.path.join(paths.container_dir(cid), name), "wb") as f:  # in place: maybe bind-mounted
                f.write(data)
        except OSError:
            continue


def on_infra_exit(paths: Paths, cfg: dict) -> None:
    """cleanup.teardown hook: the infra's final exit takes the pod's namespaces with it, so its
    members stop too (as in podman)."""
    if not cfg.get("IsInfra") or not cfg.get("Pod"):
        return
    try:
        pod = PodStore(paths).load(cfg["Pod"])
    except (OSError, ValueError):
        return
    stop_containers(paths, members(paths, pod), timeout=5)


def stop_containers(paths: Paths, recs: list, timeout: int | None = None) -> list[str]:
    """Stop in parallel: each container's stop signal at once, one shared grace period, then SIGKILL."""
    from nsbox.runtime.engine import parse_signal
    eng = _engine(paths)
    live = []
    for rec in recs:
        try:
            st = eng.state(rec)
            if st.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING):
                continue
            cfg = rec.config()
            with rec.lock():
                cur = rec.load_state()
                cur.ManuallyStopped = True
                rec.save_state(cur)
            if st.Status == S.PAUSED:
                eng._thaw(rec)
            t = timeout if timeout is not None else cfg["Config"].get("StopTimeout")
            t = 10 if t is None else int(t)
            if t > 0 and st.Pid and S.alive(st.Pid, st.PidStart):
                os.kill(st.Pid, parse_signal(cfg["Config"].get("StopSignal") or "SIGTERM"))
            live.append((rec, st, t))
        except (ProcessLookupError, NotFound, OSError, ValueError):
            continue
    if not live:
        return []
    deadline = time.monotonic() + max(t for _, _, t in live)
    while time.monotonic() < deadline and any(S.alive(st.Pid, st.PidStart) for _, st, _ in live):
        time.sleep(0.05)
    for rec, st, _ in live:
        if S.alive(st.Pid, st.PidStart):
            try:
                os.kill(st.Pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for rec, _, _ in live:
        eng.wait(rec, timeout=30)
    return [rec.id for rec, _, _ in live]


def start_pod(paths: Paths, pod: Pod) -> None:
    eng = _engine(paths)
    ensure_infra(paths, pod, explicit=True)
    errors = []
    for rec in members(paths, pod):
        try:
            eng.start(rec)
        except NsboxError as e:
            errors.append(f"{rec.id[:12]}: {e}")
    if errors:
        raise NsboxError(f"starting pod {pod.name}: " + "; ".join(errors))


def stop_pod(paths: Paths, pod: Pod, timeout: int | None = None) -> None:
    stop_containers(paths, members(paths, pod), timeout)     # members first, like podman
    rec = _infra(paths, pod)
    if rec is not None:
        stop_containers(paths, [rec], timeout)


def kill_pod(paths: Paths, pod: Pod, sig: int) -> None:
    eng = _engine(paths)
    sent = 0
    for rec in members(paths, pod) + ([_infra(paths, pod)] if _infra(paths, pod) else []):
        try:
            eng.kill(rec, sig)
            sent += 1
        except Conflict:
            continue
    if not sent:
        raise Conflict(f"pod {pod.name} has no running containers to kill")


def pause_pod(paths: Paths, pod: Pod, pause: bool) -> None:
    eng = _engine(paths)
    for rec in members(paths, pod, infra=True):
        st = eng.state(rec)
        try:
            if pause and st.Status == S.RUNNING:
                eng.pause(rec)
            elif not pause and st.Status == S.PAUSED:
                eng.unpause(rec)
        except Conflict:
            continue


def remove_pod(paths: Paths, pod: Pod, force: bool = False, timeout: int | None = None) -> None:
    """Members, infra, cgroup parent (every hierarchy), shm, record. Without -f, only a stopped pod."""
    from nsbox.runtime.cgroups import get_driver
    eng = _engine(paths)
    recs = members(paths, pod)
    infra = _infra(paths, pod)
    if not force:
        running = [r.id[:12] for r in recs + ([infra] if infra else [])
                   if eng.state(r).Status in (S.RUNNING, S.PAUSED, S.RESTARTING)]
        if running:
            raise Conflict(f"pod {pod.name} has running containers ({', '.join(running)}): "
                           "stop the pod before removing or force remove")
    else:
        stop_containers(paths, recs, 0 if timeout is None else timeout)
        if infra is not None:
            stop_containers(paths, [infra], 0 if timeout is None else timeout)
    for rec in recs + ([infra] if infra else []):
        try:
            eng.rm(rec, force=True, volumes=True)
        except NotFound:
            pass
    if pod.cgroup_parent:
        cg = get_driver().open(pod.cgroup_parent)
        try:
            cg.destroy()  # every hierarchy (v1) or the one dir (v2), sub-cgroups first
        except Exception as e:  # an already-gone parent is fine; a busy one must be reported
            if cg.exists():
                raise NsboxError(f"removing the cgroup of pod {pod.name}: {e}") from None
    release_shm(paths, pod)
    PodStore(paths).forget(pod)


def prune_pods(paths: Paths) -> list[str]:
    removed = []
    for pod in PodStore(paths).all():
        if pod_state(paths, pod) == "Exited":
            try:
                remove_pod(paths, pod)
                removed.append(pod.id)
            except NsboxError:
                continue
    return removed


def inspect_pod(paths: Paths, pod: Pod) -> dict:
    eng = _engine(paths)
    conts = []
    for rec in members(paths, pod, infra=True):
        try:
            cfg, st = rec.config(), eng.state(rec)
        except (OSError, ValueError):
            continue
        conts.append({"Id": rec.id, "Name": cfg.get("Name", "").lstrip("/"), "State": st.Status})
    infra_pid = 0
    ports = {}
    infra = _infra(paths, pod)
    if infra is not None:
        ist = eng.state(infra)
        infra_pid = ist.Pid
        ports = (ist.Network or {}).get("Ports") or infra.config()["HostConfig"].get("PortBindings") or {}
    return {
        "Id": pod.id, "Name": pod.name, "Created": pod.created, "State": pod_state(paths, pod),
        "Hostname": pod.hostname, "Labels": pod.labels, "CgroupParent": pod.cgroup_parent,
        "CreateInfra": True, "InfraContainerID": pod.infra_id, "InfraPid": infra_pid,
        "InfraConfig": {"InfraImage": pod.infra_image, "PortBindings": ports, "Network": pod.network,
                        "PidNS": "pod" if "pid" in pod.shared else "private"},
        "SharedNamespaces": sorted(pod.shared), "Resources": pod.resources,
        "NumContainers": len(conts), "Containers": conts,
    }


def list_rows(paths: Paths, no_trunc: bool = False) -> list[dict]:
    rows = []
    for pod in PodStore(paths).all():
        info = inspect_pod(paths, pod)
        rows.append({"ID": pod.id if no_trunc else pod.id[:12], "Name": pod.name, "Status": info["State"],
                     "Created": pod.created, "InfraID": pod.infra_id if no_trunc else pod.infra_id[:12],
                     "NumberOfContainers": str(info["NumContainers"]), "Labels": pod.labels,
                     "Cgroup": pod.cgroup_parent})
    return rows


def top_pod(paths: Paths, pod: Pod, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    from nsbox.runtime.procs import top
    eng = _engine(paths)
    headers: list[str] = []
    rows: list[list[str]] = []
    for rec in members(paths, pod, infra=True):
        if eng.state(rec).Status not in (S.RUNNING, S.PAUSED):
            continue
        h, r = top(eng, rec, ps_args)
        name = rec.config().get("Name", "").lstrip("/")
        headers = ["CONTAINER"] + h
        rows += [[name] + row for row in r]
    if not headers:
        raise Conflict(f"pod {pod.name} is not running")
    return headers, rows


__all__ = ["Pod", "PodStore", "PodCreateOptions", "create_pod", "start_pod", "stop_pod", "kill_pod",
           "pause_pod", "remove_pod", "prune_pods", "inspect_pod", "list_rows", "top_pod", "pod_state",
           "ensure_infra", "on_container_start", "on_infra_exit", "shm_mount"]
