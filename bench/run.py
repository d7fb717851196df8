#!/usr/bin/env python3
"""nsbox benchmark runner: nsbox side by side with runc, crun, podman and docker, in ONE run.

Not part of the test suite. Run as root:  bench/run.py [--runs 12] [--out docs/benchmarks.md]
                                          bench/run.py --profile     (cProfile + -X importtime of `nsbox run`)

* Commands of one case are interleaved round-robin per iteration (the order rotates every iteration), so
  machine drift hits every engine alike. Before each case the runner waits (bounded) for CPU pressure
  (PSI /proc/pressure/cpu "some avg10") to fall below --psi.
* Everything lives under one temp dir: nsbox --root/--runroot, podman --root/--runroot/--tmpdir, runc/crun
  state, and a private dockerd (--data-root/--exec-root/-H unix://). At the end (try/finally + atexit +
  SIGTERM) the runner removes containers, stops dockerd by PID, deletes docker0/podman0 and the DOCKER*/
  NETAVARK* iptables chains it caused (only those that did not exist before), unmounts what is left under
  the temp dir and removes it.
* crun 1.8 refuses hybrid cgroup hosts, so crun and podman+crun run in a "legacy ns": a forked executor in a
  private mount namespace with /sys/fs/cgroup/unified unmounted. Timing is done inside whichever process
  spawns the command (same code), so the executor round-trip is not measured.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_NSBOX = "/opt/nsbox/venv/bin/nsbox"
IMG_PODMAN = "localhost/bench-busybox:latest"
IMG_DOCKER = "bench-busybox:latest"
BENCH_BRIDGE = "nsbench0"

TARGETS = {  # case -> (peer, max ratio or None, text)
    "run-none": [("runc", 1.5, "<= 1.5x runc"), ("podman+crun", 0.35, "<= 0.35x podman+crun")],
    "run-bridge": [("podman+crun", 0.4, "<= 0.4x podman+crun"), ("podman+runc", 0.4, "<= 0.4x podman+runc")],
    "run-publish": [("docker", 0.4, "<= 0.4x docker")],
    "rebuild": [("buildah", 0.5, "<= 0.5x buildah")],
}


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- helpers
def sh(argv, env=None, check=False, timeout=120, input=None):
    """Run, capture (via temp files: detached children may keep pipes open), return CompletedProcess."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL if input is None else None, input=input,
                               stdout=out, stderr=err, env=env, timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = -999
        except FileNotFoundError as e:
            if check:
                raise
            return subprocess.CompletedProcess(argv, 127, "", str(e))
        out.seek(0), err.seek(0)
        r = subprocess.CompletedProcess(argv, rc, out.read().decode(errors="replace"),
                                        err.read().decode(errors="replace"))
    if check and rc != 0:
        raise RuntimeError(f"{argv!r} failed rc={rc}: {r.stderr.strip()[-800:]}")
    return r


def timed(argv, env=None, timeout=300):
    """(seconds, rc, stdout, stderr-tail) of one command; the same code runs in the host and legacy ns."""
    # Not subprocess.run(timeout=...): its wait polls with sleeps growing to 50 ms, which quantized
    # every timing (runc read 64 ms instead of 32). Block in waitpid; a watchdog enforces the timeout.
    import threading
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        except FileNotFoundError:
            p = None
        if p is None:
            rc = 127
        else:
            expired = []
            dog = threading.Timer(timeout, lambda: (expired.append(1), p.kill()))
            dog.start()
            rc = p.wait()
            dt = time.perf_counter() - t0
            dog.cancel()
            if expired:
                rc = -999
        if p is None:
            dt = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        return dt, rc, out.read().decode(errors="replace"), err.read().decode(errors="replace")[-600:]


def psi_some_avg10():
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return float(re.search(r"avg10=([\d.]+)", line).group(1))
    except OSError:
        pass
    return None


def wait_quiet(threshold, max_wait):
    t0 = time.monotonic()
    v = psi_some_avg10()
    while v is not None and v > threshold and time.monotonic() - t0 < max_wait:
        time.sleep(2)
        v = psi_some_avg10()
    return v, time.monotonic() - t0


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def proc_mem(pid):
    """(rss_kB, pss_kB) of one process, or (None, None)."""
    rss = pss = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def find_pids(*needles):
    """PIDs whose cmdline contains every needle."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            out.append(int(d))
    return out


def free_port(start):
    for port in range(start, start + 500):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if str(port) in sh(["sh", "-c", "iptables-save 2>/dev/null"]).stdout:
            continue
        return port
    raise RuntimeError("no free port")


# ------------------------------------------------------------------------- the legacy-ns executor
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE, MNT_DETACH = 0x20000, 0x4000, 0x40000, 2


class Executor:
    """Runs commands in the current ns (local) or in a forked child in a private mount ns with
    /sys/fs/cgroup/unified unmounted (legacy). Timing happens in the process that spawns the command."""

    def __init__(self, legacy):
        self.legacy = legacy
        self.pid = None
        if not legacy:
            return
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w1), os.close(r2)
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
                if libc.unshare(CLONE_NEWNS) != 0:
                    raise OSError(ctypes.get_errno(), "unshare")
                if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                    raise OSError(ctypes.get_errno(), "mount private")
                if os.path.ismount("/sys/fs/cgroup/unified"):
                    libc.umount2(b"/sys/fs/cgroup/unified", MNT_DETACH)
                rf, wf = os.fdopen(r1, "r"), os.fdopen(w2, "w")
                wf.write(json.dumps({"ok": True}) + "\n"), wf.flush()
                for line in rf:
                    req = json.loads(line)
                    if req.get("exit"):
                        break
                    res = timed(req["argv"], req.get("env"), req.get("timeout", 300))
                    wf.write(json.dumps(res) + "\n")
                    wf.flush()
            except BaseException as e:  # noqa: BLE001
                try:
                    os.write(w2, (json.dumps({"error": repr(e)}) + "\n").encode())
                except OSError:
                    pass
                code = 1
            os._exit(code)
        os.close(r1), os.close(w2)
        self.pid, self.wf, self.rf = pid, os.fdopen(w1, "w"), os.fdopen(r2, "r")
        hello = json.loads(self.rf.readline() or '{"error": "executor died"}')
        if "error" in hello:
            raise RuntimeError(f"legacy-ns executor: {hello['error']}")
        self.lock = threading.Lock()

    def run(self, argv, env=None, timeout=300):
        if not self.legacy:
            return timed(argv, env, timeout)
        with self.lock:
            self.wf.write(json.dumps({"argv": argv, "env": env, "timeout": timeout}) + "\n")
            self.wf.flush()
            line = self.rf.readline()
        if not line:
            raise RuntimeError("legacy-ns executor died")
        return tuple(json.loads(line))

    def close(self):
        if self.pid:
            with contextlib.suppress(Exception):
                self.wf.write(json.dumps({"exit": True}) + "\n")
                self.wf.flush()
            for _ in range(50):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None


# ------------------------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="nsbox-bench-")
        os.chmod(self.tmp, 0o755)
        self.cleanups = []  # LIFO
        self.notes = []
        self.results = {}  # case -> dict
        self.counter = 0
        self.env = dict(os.environ)
        self.nsbox_root = f"{self.tmp}/nsbox/root"
        self.nsbox = [args.nsbox, "--root", self.nsbox_root, "--runroot", f"{self.tmp}/nsbox/run"]
        # nsbox's default network gets its own bridge name, so a shared nsbox0 is never touched; its nft
        # tables are tagged with sha256(root)[:8] (network/fileio.py root_tag), which cleanup deletes.
        os.environ["NSBOX_BRIDGE"] = BENCH_BRIDGE
        self.local = Executor(False)
        self.legacy = None
        self.before_links = set(os.listdir("/sys/class/net"))
        self.before_chains = self.chains()
        self.before_tables = self.nft_tables()
        self.before_cgroups = self.cgroup_dirs()
        self.ip_forward = open("/proc/sys/net/ipv4/ip_forward").read().strip()
        self.forward_policy = {}
        for fam in ("iptables",):
            m = re.search(r"^-P FORWARD (\w+)", sh([fam, "-S", "FORWARD"]).stdout, re.M)
            if m:
                self.forward_policy[fam] = m.group(1)
        self.docker_key_existed = os.path.exists("/etc/docker/key.json")
        self.dockerd = None
        self.have = {}

    # ---- state snapshots used by cleanup
    @staticmethod
    def chains():
        out = set()
        for table in ("filter", "nat", "mangle", "raw"):
            for line in sh(["iptables", "-t", table, "-S"]).stdout.splitlines():
                if line.startswith("-N "):
                    out.add((table, line.split()[1]))
        return out

    @staticmethod
    def nft_tables():
        return set(re.findall(r"^table (\S+ \S+)", sh(["nft", "list", "tables"]).stdout, re.M))

    @staticmethod
    def cgroup_dirs():
        out = set()
        for h in ("memory", "cpu", "pids", "devices", "freezer", "blkio", "cpuset", "cpuacct", "systemd",
                  "unified", "hugetlb", "net_cls", "perf_event"):
            for name in ("docker", "libpod_parent", "machine.slice"):
                p = f"/sys/fs/cgroup/{h}/{name}"
                if os.path.isdir(p):
                    out.add(p)
        return out

    def at_end(self, fn, what):
        self.cleanups.append((fn, what))

    def cleanup(self):
        while self.cleanups:
            fn, what = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup {what}: {e!r}")
        self.cleanup_network()
        if self.legacy:
            self.legacy.close()
            self.legacy = None
        self.unmount_under(self.tmp)
        for p in sorted(self.cgroup_dirs() - self.before_cgroups, key=len, reverse=True):
            for root, dirs, _ in os.walk(p, topdown=False):
                for d in dirs:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(root, d))
            with contextlib.suppress(OSError):
                os.rmdir(p)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if os.path.exists(self.tmp):
            log(f"could not remove {self.tmp} entirely")

    @staticmethod
    def unmount_under(prefix):
        for _ in range(3):
            mps = []
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    mp = line.split()[4].replace("\\040", " ")
                    if mp == prefix or mp.startswith(prefix + "/"):
                        mps.append(mp)
            if not mps:
                return
            for mp in sorted(mps, key=len, reverse=True):
                libc.umount2(mp.encode(), MNT_DETACH)

    def cleanup_network(self):
        """Remove docker0/podman0 and DOCKER*/NETAVARK* chains that appeared during the run."""
        for link in ("docker0", "podman0", BENCH_BRIDGE):
            if link not in self.before_links and os.path.exists(f"/sys/class/net/{link}"):
                sh(["ip", "link", "del", link])
        new = {c for c in self.chains() - self.before_chains if re.match(r"(DOCKER|NETAVARK|CNI-)", c[1])}
        if new:
            names = {c[1] for c in new}
            for table in ("filter", "nat", "mangle", "raw"):
                for line in sh(["iptables", "-t", table, "-S"]).stdout.splitlines():
                    if not line.startswith("-A "):
                        continue
                    parts = shlex.split(line)
                    chain = parts[1]
                    target = parts[parts.index("-j") + 1] if "-j" in parts else None
                    if (table, chain) in new:
                        continue  # flushed below
                    if target in names or "docker0" in parts or "podman0" in parts:
                        sh(["iptables", "-t", table, "-D"] + parts[1:])
            for table, chain in new:
                sh(["iptables", "-t", table, "-F", chain])
            for table, chain in new:
                sh(["iptables", "-t", table, "-X", chain])
        for fam, pol in self.forward_policy.items():
            m = re.search(r"^-P FORWARD (\w+)", sh([fam, "-S", "FORWARD"]).stdout, re.M)
            if m and m.group(1) != pol:
                sh([fam, "-P", "FORWARD", pol])
        for t in ("ip filter", "ip nat", "ip6 filter", "ip6 nat"):  # empty iptables-nft tables we caused
            if t in self.nft_tables() - self.before_tables:
                body = sh(["nft", "list", "table"] + t.split()).stdout
                if all(not ln.strip() or ln.strip().startswith(("table", "chain", "type", "}"))
                       for ln in body.splitlines()):
                    sh(["nft", "delete", "table"] + t.split())
        if open("/proc/sys/net/ipv4/ip_forward").read().strip() != self.ip_forward:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write(self.ip_forward)
        if os.path.exists("/etc/docker/key.json") and not self.docker_key_existed:
            os.unlink("/etc/docker/key.json")

    # ---- setup
    def rootfs_tar(self):
        """The exact tar of nsbox's embedded busybox image (image/default.py)."""
        sys.path.insert(0, os.path.dirname(REPO))
        try:
            from nsbox.image import default as dflt
        except ImportError:
            sys.path.pop(0)
            sys.path.insert(0, REPO)
            import importlib
            dflt = importlib.import_module("image.default")
        return dflt.build_tar(int(os.stat("/bin/busybox").st_mtime))

    def setup(self):
        a = self.a
        self.tar = f"{self.tmp}/busybox.tar"
        with open(self.tar, "wb") as f:
            f.write(self.rootfs_tar())
        # nsbox: its own embedded busybox (same tar) in a private root
        r = sh(self.nsbox + ["run", "--rm", "--network", "none", "busybox", "true"], timeout=120)
        self.have["nsbox"] = r.returncode == 0
        if not self.have["nsbox"]:
            raise RuntimeError(f"nsbox does not run: {r.stderr.strip()}")
        self.at_end(self.cleanup_nsbox, "nsbox containers")
        # OCI bundle for runc/crun
        self.bundle = f"{self.tmp}/bundle"
        os.makedirs(f"{self.bundle}/rootfs")
        with tarfile.open(self.tar) as t:
            t.extractall(f"{self.bundle}/rootfs")
        if shutil.which("runc"):
            subprocess.run(["runc", "spec"], cwd=self.bundle, check=True)
            with open(f"{self.bundle}/config.json") as f:
                spec = json.load(f)
            spec["process"]["terminal"] = False
            spec["process"]["args"] = ["/bin/true"]
            with open(f"{self.bundle}/config.json", "w") as f:
                json.dump(spec, f, indent=1)
            self.have["runc"] = True
            self.at_end(lambda: self.cleanup_oci("runc", self.local), "runc containers")
        need_legacy = shutil.which("crun") or shutil.which("podman")
        if need_legacy:
            self.legacy = Executor(True)
        if shutil.which("crun") and self.have.get("runc"):
            dt, rc, _, err = self.legacy.run(["crun", "--root", f"{self.tmp}/crun", "run", "-b", self.bundle,
                                              "bench-probe"])
            self.have["crun"] = rc == 0
            if rc:
                self.notes.append(f"crun unusable: {err.strip()}")
            self.at_end(lambda: self.cleanup_oci("crun", self.legacy), "crun containers")
        if shutil.which("podman"):
            self.setup_podman()
        if a.docker and shutil.which("dockerd"):
            self.setup_docker()
        elif not a.docker:
            self.notes.append("docker skipped (--no-docker)")

    def podman(self, which):
        """podman argv with a private store; which: 'crun' (legacy ns) or 'runc' (host ns)."""
        base = f"{self.tmp}/podman-{which}"
        return ["podman", "--root", f"{base}/root", "--runroot", f"{base}/run", "--tmpdir", f"{base}/tmp",
                "--cgroup-manager", "cgroupfs", "--runtime", which]

    def setup_podman(self):
        conf = f"{self.tmp}/containers.conf"
        src = "/usr/share/containers/containers.conf"
        text = open(src).read() if os.path.exists(src) else "[containers]\n"
        hard = sh(["sh", "-c", "ulimit -Hn"]).stdout.strip() or "20000"
        text = text.replace("[containers]\n", f'[containers]\ndefault_ulimits = ["nofile={hard}:{hard}", '
                                              f'"nproc=32768:32768"]\n', 1)
        with open(conf, "w") as f:
            f.write(text)
        self.penv = dict(os.environ, CONTAINERS_CONF=conf)
        for which, ex in (("crun", self.legacy), ("runc", self.local)):
            if not self.have.get(which):
                continue
            _, rc, _, err = ex.run(self.podman(which) + ["import", "-q", self.tar, IMG_PODMAN], self.penv)
            if rc == 0:
                _, rc, _, err = ex.run(self.podman(which) + ["run", "--rm", "--pull", "never", "--network", "none",
                                                              IMG_PODMAN, "true"], self.penv)
            self.have[f"podman+{which}"] = rc == 0
            if rc:
                self.notes.append(f"podman+{which} unusable: {err.strip()[-300:]}")
            self.at_end(lambda w=which, e=ex: self.cleanup_podman(w, e), f"podman+{which}")

    def docker(self):
        return [shutil.which("docker", path="/usr/bin") or "docker", "-H", f"unix://{self.tmp}/docker/sock"]

    def setup_docker(self):
        if "docker0" in self.before_links:
            self.notes.append("docker skipped: a docker0 bridge already exists (another dockerd?)")
            return
        d = f"{self.tmp}/docker"
        os.makedirs(f"{d}/data"), os.makedirs(f"{d}/exec")
        with open(f"{d}/daemon.json", "w") as f:
            f.write("{}")
        logf = open(f"{d}/dockerd.log", "wb")
        self.dockerd = subprocess.Popen(
            ["dockerd", "--config-file", f"{d}/daemon.json", "--data-root", f"{d}/data", "--exec-root",
             f"{d}/exec", "--pidfile", f"{d}/dockerd.pid", "-H", f"unix://{d}/sock", "--ip-forward=false",
             "--log-level", "warn"], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        self.at_end(self.stop_dockerd, "dockerd")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            if self.dockerd.poll() is not None:
                break
            if sh(self.docker() + ["version"], timeout=10).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pass
        if self.dockerd.poll() is not None or sh(self.docker() + ["version"]).returncode:
            self.notes.append("docker skipped: dockerd did not come up (see its log)")
            return
        sh(self.docker() + ["import", self.tar, IMG_DOCKER], check=True, timeout=120)
        r = sh(self.docker() + ["run", "--rm", "--network", "none", IMG_DOCKER, "true"], timeout=120)
        self.have["docker"] = r.returncode == 0
        if r.returncode:
            self.notes.append(f"docker unusable: {r.stderr.strip()[-300:]}")
        self.at_end(self.cleanup_docker_containers, "docker containers")

    # ---- teardown per engine
    def cleanup_nsbox(self):
        ids = sh(self.nsbox + ["ps", "-aq"]).stdout.split()
        if ids:
            sh(self.nsbox + ["rm", "-f"] + ids, timeout=120)
        for net in sh(self.nsbox + ["network", "ls", "-q"]).stdout.split():
            if net not in ("bridge", "host", "none", "nsbox"):
                sh(self.nsbox + ["network", "rm", net])
        # what the bench's own root holds in the kernel: its bridge, nft tables, cgroup parent, netns mount
        try:
            from nsbox.runtime.cleanup import purge_root
            from nsbox.runtime.paths import Paths
            purge_root(Paths(self.nsbox_root, f"{self.tmp}/nsbox/run"))
        except Exception as e:  # keep cleaning the rest; say what is left
            self.notes.append(f"nsbox purge: {e}")

    def cleanup_oci(self, rt, ex):
        state = f"{self.tmp}/{rt}"
        if os.path.isdir(state):
            for cid in os.listdir(state):
                ex.run([rt, "--root", state, "delete", "-f", cid], timeout=60)

    def cleanup_podman(self, which, ex):
        p = self.podman(which)
        ex.run(p + ["pod", "rm", "-af", "-t", "0"], self.penv, timeout=120)
        ex.run(p + ["rm", "-af", "-t", "0"], self.penv, timeout=120)
        ex.run(p + ["rmi", "-af"], self.penv, timeout=120)
        ex.run(["sh", "-c", f'grep -o " {self.tmp}/[^ ]*" /proc/self/mountinfo | sort -r | '
                            f'while read m; do umount -l "$m"; done'], timeout=60)

    def cleanup_docker_containers(self):
        ids = sh(self.docker() + ["ps", "-aq"]).stdout.split()
        if ids:
            sh(self.docker() + ["rm", "-f"] + ids, timeout=120)

    def stop_dockerd(self):
        p = self.dockerd
        if not p or p.poll() is not None:
            return
        kids = [int(x) for x in sh(["ps", "-o", "pid=", "--ppid", str(p.pid)]).stdout.split()]
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        for k in kids:  # its managed containerd, if it outlived dockerd
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGTERM)

    # ---- measuring
    def uid(self, prefix):
        self.counter += 1
        return f"{prefix}{os.getpid()}-{self.counter}"

    def measure(self, case, title, cmds, runs=None, warmup=None, note=""):
        """cmds: list of (label, executor, fn() -> argv | list of argv steps, env). Round-robin."""
        runs = runs or self.a.runs
        warmup = self.a.warmup if warmup is None else warmup
        psi, waited = wait_quiet(self.a.psi, self.a.psi_wait)
        log(f"{case}: PSI some avg10 {psi} after {waited:.0f}s; {len(cmds)} commands x {warmup}+{runs}")
        times = {c[0]: [] for c in cmds}
        fails = {c[0]: "" for c in cmds}
        for it in range(warmup + runs):
            k = it % len(cmds)
            for label, ex, fn, env in cmds[k:] + cmds[:k]:
                if fails[label] and not times[label]:
                    continue
                steps = fn()
                if steps and isinstance(steps[0], str):
                    steps = [steps]
                total, ok = 0.0, True
                for st in steps:
                    if callable(st):
                        st = st()
                    dt, rc, out, err = ex.run(st, env)
                    total += dt
                    self.last_out = out
                    if rc != 0:
                        ok = False
                        fails[label] = f"rc={rc}: {err.strip()[-300:]}"
                        break
                if ok and it >= warmup:
                    times[label].append(total)
        psi_after = psi_some_avg10()
        self.results[case] = {"title": title, "times": times, "fails": fails, "psi": (psi, psi_after),
                              "note": note, "runs": runs}
        for label, ts in times.items():
            if ts:
                log(f"  {label:14s} median {statistics.median(ts) * 1000:8.1f} ms  n={len(ts)}")
            else:
                log(f"  {label:14s} FAILED {fails[label]}")

    def skip(self, case, title, why):
        log(f"{case}: skipped: {why}")
        self.results[case] = {"title": title, "skipped": why}

    def nsbox_probe(self, argv, needle=("not available", "No such command", "no such option")):
        r = sh(self.nsbox + argv, timeout=120)
        if r.returncode == 0:
            return None
        return (r.stderr.strip() or r.stdout.strip()).splitlines()[-1][:200] if (r.stderr or r.stdout) else \
            f"rc={r.returncode}"

    # ---- cases
    def case_run(self, case, title, net):
        """net: 'none' | 'bridge' | 'publish'."""
        port = {}
        if net == "none":
            nflag = ["--network", "none"]
        elif net == "bridge":
            nflag = []
        else:
            for e in ("nsbox", "podman+crun", "podman+runc", "docker"):
                port[e] = free_port(18080 + 10 * len(port))
        if net != "none":
            why = self.nsbox_probe(["run", "--rm"] + (["-p", f"127.0.0.1:{port['nsbox']}:80"] if port else [])
                                   + ["busybox", "true"])
            if why:
                return self.skip(case, title, f"nsbox: {why}")

        def pflag(e):
            return ["-p", f"127.0.0.1:{port[e]}:80"] if net == "publish" else (nflag if net == "none" else [])
        cmds = [("nsbox", self.local, lambda: self.nsbox + ["run", "--rm"] + pflag("nsbox") + ["busybox", "true"],
                 None)]
        if net == "none":
            if self.have.get("runc"):
                cmds.append(("runc", self.local, lambda: ["runc", "--root", f"{self.tmp}/runc", "run", "-b",
                                                          self.bundle, self.uid("r")], None))
            if self.have.get("crun"):
                cmds.append(("crun", self.legacy, lambda: ["crun", "--root", f"{self.tmp}/crun", "run", "-b",
                                                           self.bundle, self.uid("c")], None))
        for w, ex in (("crun", self.legacy), ("runc", self.local)):
            if self.have.get(f"podman+{w}"):
                cmds.append((f"podman+{w}", ex, lambda w=w: self.podman(w) + ["run", "--rm", "--pull", "never"]
                             + pflag(f"podman+{w}") + [IMG_PODMAN, "true"], self.penv))
        if self.have.get("docker"):
            cmds.append(("docker", self.local, lambda: self.docker() + ["run", "--rm"] + pflag("docker")
                         + [IMG_DOCKER, "true"], None))
        self.measure(case, title, cmds)

    def case_lifecycle(self):
        case, title = "create-start-rm", "`create` + `start` + `rm -f` (--network none, /bin/true), sum of 3 commands"

        def engine(label, base, ex, env, img, create_extra=()):
            box = {}

            def create():
                return base + ["create"] + list(create_extra) + ["--network", "none", img, "true"]

            def start():
                box["id"] = self.last_out.strip().splitlines()[-1]
                return base + ["start", box["id"]]

            def rm():
                return base + ["rm", "-f", box["id"]]
            return (label, ex, lambda: [create(), start, rm], env)
        cmds = [engine("nsbox", self.nsbox, self.local, None, "busybox")]
        if self.have.get("runc"):
            def runc_steps():
                cid = self.uid("l")
                r = ["runc", "--root", f"{self.tmp}/runc"]
                return [r + ["create", "-b", self.bundle, cid], r + ["start", cid], r + ["delete", "-f", cid]]
            cmds.append(("runc", self.local, runc_steps, None))
        for w, ex in (("crun", self.legacy), ("runc", self.local)):
            if self.have.get(f"podman+{w}"):
                cmds.append(engine(f"podman+{w}", self.podman(w), ex, self.penv, IMG_PODMAN, ["--pull", "never"]))
        if self.have.get("docker"):
            cmds.append(engine("docker", self.docker(), self.local, None, IMG_DOCKER))
        self.measure(case, title, cmds)

    def case_many(self):
        """20 detached `sleep 1000` one after another, memory per container, then one `rm -f` of all 20."""
        case = "many"
        n, rounds = self.a.many, self.a.many_rounds
        engines = [("nsbox", self.nsbox, self.local, None, "busybox", [], [])]
        for w, ex in (("crun", self.legacy), ("runc", self.local)):
            if self.have.get(f"podman+{w}"):
                # podman's plain rm -f waits the 10 s stop timeout (SIGTERM is ignored by PID 1): use -t 0
                engines.append((f"podman+{w}", self.podman(w), ex, self.penv, IMG_PODMAN, ["--pull", "never"],
                                ["-t", "0"]))
        if self.have.get("docker"):
            engines.append(("docker", self.docker(), self.local, None, IMG_DOCKER, [], []))
        psi, waited = wait_quiet(self.a.psi, self.a.psi_wait)
        log(f"{case}: PSI {psi} after {waited:.0f}s; {len(engines)} engines x {rounds} rounds of {n}")
        start_t = {e[0]: [] for e in engines}
        rm_t = {e[0]: [] for e in engines}
        mem = {}
        fails = {}
        for r in range(rounds):
            k = r % len(engines)
            for label, base, ex, env, img, rflag, rmflag in engines[k:] + engines[:k]:
                ids, total = [], 0.0
                for i in range(n):
                    dt, rc, out, err = ex.run(base + ["run", "-d"] + rflag + ["--network", "none", img,
                                                                              "sleep", "1000"], env)
                    if rc:
                        fails[label] = f"run -d rc={rc}: {err.strip()[-300:]}"
                        break
                    total += dt
                    ids.append(out.strip().splitlines()[-1])
                if len(ids) == n:
                    start_t[label].append(total)
                    if label not in mem:
                        time.sleep(1)
                        mem[label] = self.container_memory(label, base, ex, env, ids)
                if ids:
                    dt, rc, _, err = ex.run(base + ["rm", "-f"] + rmflag + ids, env, timeout=120)
                    if rc:
                        fails[label] = f"rm -f rc={rc}: {err.strip()[-300:]}"
                    elif len(ids) == n:
                        rm_t[label].append(dt)
        self.results[case] = {"title": f"{n} detached `sleep 1000` containers", "start": start_t, "rm": rm_t,
                              "mem": mem, "fails": fails, "psi": (psi, psi_some_avg10()), "n": n,
                              "note": "podman uses `rm -f -t 0` (its plain `rm -f` waits its 10 s stop timeout: "
                                      "~31 s for 20, see reference-figures §5); nsbox and docker use plain `rm -f`."}
        for label in start_t:
            log(f"  {label}: start {start_t[label]} rm {rm_t[label]} mem {mem.get(label)}")

    def container_memory(self, label, base, ex, env, ids):
        """Per-container runtime overhead: nsbox monitor / conmon / containerd-shim (RSS, PSS in kB)."""
        procs = []
        server = None
        if label == "nsbox":
            for cid in ids:
                # forked from the preload server (titled nsbox-monitor), or spawned on its own
                procs += find_pids("nsbox-monitor", cid) or find_pids("nsbox.runtime.monitor", cid)
            # the preload server and its helpers (primer, spares), all titled nsbox-preload*
            helpers = find_pids("nsbox-preload", f"{self.tmp}/nsbox/run")
            if helpers:
                mems = [m for m in map(proc_mem, helpers) if m[0] is not None]
                server = (sum(m[0] for m in mems), sum(m[1] or 0 for m in mems), len(mems))
        elif label.startswith("podman"):
            for cid in ids:
                _, rc, out, _ = ex.run(base + ["inspect", "-f", "{{.State.ConmonPid}}", cid], env)
                if rc == 0 and out.strip().isdigit():
                    procs.append(int(out.strip()))
        elif label == "docker":
            for cid in ids:
                procs += find_pids("containerd-shim", cid[:12])
        rss = [m[0] for m in map(proc_mem, procs) if m[0] is not None]
        pss = [m[1] for m in map(proc_mem, procs) if m[1] is not None]
        what = {"nsbox": "monitor", "docker": "containerd-shim-runc-v2"}.get(label, "conmon")
        out = {"what": what, "nprocs": len(procs), "rss_kb": rss, "pss_kb": pss}
        if server and server[0] is not None:
            out["server_kb"] = {"rss": server[0], "pss": server[1], "nprocs": server[2]}
        return out

    def case_pause(self):
        why = self.nsbox_probe(["pod", "--help"])
        if why:
            return self.skip("pause", "pod pause process RSS", f"nsbox: {why}")
        name = self.uid("pod")
        r = sh(self.nsbox + ["pod", "create", "--name", name])
        if r.returncode:
            return self.skip("pause", "pod pause process RSS", f"nsbox pod create: {r.stderr.strip()[-200:]}")
        sh(self.nsbox + ["pod", "start", name])
        sh(self.nsbox + ["run", "-d", "--pod", name, "busybox", "sleep", "1000"])  # members take the pod's network
        out = sh(self.nsbox + ["pod", "inspect", name]).stdout
        pids = []
        with contextlib.suppress(Exception):
            info = json.loads(out)
            info = info[0] if isinstance(info, list) else info
            infra = info["InfraContainerID"]
            pid = sh(self.nsbox + ["inspect", "-f", "{{.State.Pid}}", infra]).stdout.strip()
            if pid.isdigit() and int(pid) > 0:
                pids.append(int(pid))
        if not pids:
            pids = find_pids("pause", name) or find_pids("catatonit")
        mem = [proc_mem(p) for p in pids]
        sh(self.nsbox + ["pod", "rm", "-f", name], timeout=120)
        self.results["pause"] = {"title": "pod pause process", "mem": mem, "pids": pids}

    def case_rebuild(self):
        title = "cached rebuild of a 10-step Dockerfile"
        why = self.nsbox_probe(["build", "--help"])
        if why:
            return self.skip("rebuild", title, f"nsbox: {why}")
        ctx = f"{self.tmp}/buildctx"
        os.makedirs(ctx, exist_ok=True)
        steps = ["FROM {img}"] + [f"RUN echo step{i} > /step{i}" for i in range(1, 7)] + \
            ["ENV BENCH=1", "WORKDIR /tmp", "COPY hello.txt /hello.txt", 'CMD ["sh"]']
        with open(f"{ctx}/hello.txt", "w") as f:
            f.write("hello\n")
        for name, img in (("nsbox", "busybox"), ("oci", IMG_PODMAN), ("docker", IMG_DOCKER)):
            with open(f"{ctx}/Dockerfile.{name}", "w") as f:
                f.write("\n".join(steps[:1]).format(img=img) + "\n" + "\n".join(steps[1:]) + "\n")
        cmds = [("nsbox", self.local, lambda: self.nsbox + ["build", "-f", f"{ctx}/Dockerfile.nsbox", "-t",
                                                             "bench-rebuild", ctx], None)]
        if shutil.which("buildah") and self.have.get("podman+runc"):
            b = f"{self.tmp}/podman-runc"
            cmds.append(("buildah", self.local, lambda: [
                "buildah", "--root", f"{b}/root", "--runroot", f"{b}/run", "bud", "--pull-never", "--layers",
                "--runtime", "runc", "--isolation", "chroot", "-f", f"{ctx}/Dockerfile.oci", "-t", "bench-rebuild",
                ctx], self.penv))
        if self.have.get("docker"):
            cmds.append(("docker", self.local, lambda: self.docker() + ["build", "-q", "-f",
                                                                         f"{ctx}/Dockerfile.docker", "-t",
                                                                         "bench-rebuild", ctx], None))
        for label, ex, fn, env in cmds:  # the first (uncached) build
            _, rc, _, err = ex.run(fn(), env, timeout=600)
            if rc:
                self.notes.append(f"rebuild: first {label} build failed: {err.strip()[-200:]}")
        self.measure("rebuild", title, cmds, note=(
            "Dockerfile: FROM busybox, 6 x RUN echo, ENV, WORKDIR, COPY, CMD (10 steps after FROM); one uncached "
            "build first, then every timed run is a fully cached rebuild. buildah: `bud --layers --isolation "
            "chroot` on podman+runc's private store; docker: the classic builder of docker 20.10 (`build -q`)."))

    def case_throughput(self):
        title = "published-port throughput (HTTP GETs on loopback vs the container's own address)"
        port = free_port(18180)
        why = self.nsbox_probe(["run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true"])
        if why:
            return self.skip("throughput", title, f"nsbox: {why}")
        r = sh(self.nsbox + ["run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                             "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"])
        if r.returncode:
            return self.skip("throughput", title, f"nsbox run -d -p: {r.stderr.strip()[-200:]}")
        cid = r.stdout.strip().splitlines()[-1]
        try:
            ip = sh(self.nsbox + ["inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid]).stdout.strip()
            res = {}
            time.sleep(1)
            targets = [("published 127.0.0.1:%d" % port, "127.0.0.1", port)]
            if re.match(r"^\d+\.\d+\.\d+\.\d+$", ip or ""):
                targets.insert(0, (f"direct {ip}:80", ip, 80))
            for _ in range(3):  # alternate
                for label, host, p in targets:
                    res.setdefault(label, []).append(http_load(host, p, self.a.tp_requests, self.a.tp_seconds))
            self.results["throughput"] = {"title": title, "res": res}
        finally:
            sh(self.nsbox + ["rm", "-f", cid], timeout=60)

    def case_layers(self):
        title = "`nsbox run --rm --network none IMG true` against the image's layer count"
        counts = [int(x) for x in self.a.layers.split(",")]
        cmds = []
        why = None
        for n in counts:
            arch = f"{self.tmp}/layers-{n}.tar"
            make_layered_archive(self.tar, n, f"bench-layers:{n}", arch)
            r = sh(self.nsbox + ["load", "-i", arch], timeout=600)
            if r.returncode:
                why = f"nsbox load of a {n}-layer image: {r.stderr.strip()[-200:]}"
                break
            probe = sh(self.nsbox + ["run", "--rm", "--network", "none", f"bench-layers:{n}", "true"])
            if probe.returncode:
                self.notes.append(f"layers: {n} layers does not run: {probe.stderr.strip()[-200:]}")
                continue
            cmds.append((f"{n} layers", self.local, lambda n=n: self.nsbox + [
                "run", "--rm", "--network", "none", f"bench-layers:{n}", "true"], None))
        if why:
            return self.skip("layers", title, why)
        self.measure("layers", title, cmds)


def make_layered_archive(base_tar, n, ref, out):
    """docker-archive: layer 1 = the busybox rootfs, layers 2..n = one tiny file each."""
    import hashlib
    layers = [open(base_tar, "rb").read()]
    for i in range(1, n):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
            data = f"layer {i}\n".encode()
            ti = tarfile.TarInfo(f"layer{i:03d}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
        layers.append(buf.getvalue())
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "created": "2026-01-01T00:00:00Z",
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(n)]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    with tarfile.open(out, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        names = []
        for d, x in zip(diff_ids, layers):
            name = d[7:] + "/layer.tar"
            if name not in names:
                add(name, x)
            names.append(name)
        add(cfg_name, cfg)
        add("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": [ref], "Layers": names}]).encode())


def http_load(host, port, max_requests, max_seconds, conns=4):
    """Bounded HTTP/1.0 GET load (loopback / bench-made netns only): requests per second."""
    count = [0]
    stop = time.monotonic() + max_seconds
    lock = threading.Lock()
    req = f"GET /index.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()

    def worker():
        while time.monotonic() < stop:
            with lock:
                if count[0] >= max_requests:
                    return
                count[0] += 1
            try:
                with socket.create_connection((host, port), timeout=5) as s:
                    s.sendall(req)
                    while s.recv(65536):
                        pass
            except OSError:
                with lock:
                    count[0] -= 1
                time.sleep(0.01)
    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(conns)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    return count[0] / (time.monotonic() - t0)


# ------------------------------------------------------------------------------------- report
def version(argv):
    r = sh(argv, timeout=30)
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"


def machine(b):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = open("/proc/meminfo").readline().split()[1]
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        cg = "cgroup v2 (unified)"
    elif os.path.ismount("/sys/fs/cgroup/unified"):
        ctr = open("/sys/fs/cgroup/unified/cgroup.controllers").read().split()
        cg = f"hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified, controllers: {' '.join(ctr) or 'none'})"
    else:
        cg = "cgroup v1 (legacy)"
    vpy = os.path.join(os.path.dirname(b.nsbox[0]), "python")
    py = version([vpy, "--version"]) if os.path.exists(vpy) else platform.python_version()
    vers = [("nsbox", version(b.nsbox + ["version"])), ("Python (nsbox venv)", py)]
    for name, argv in (("runc", ["runc", "--version"]), ("crun", ["crun", "--version"]),
                       ("podman", ["podman", "--version"]), ("conmon", ["conmon", "--version"]),
                       ("buildah", ["buildah", "--version"]), ("catatonit", ["catatonit", "--version"]),
                       ("docker (client)", [shutil.which("docker", path="/usr/bin") or "docker", "--version"]),
                       ("dockerd", ["dockerd", "--version"]), ("containerd", ["containerd", "--version"]),
                       ("busybox", ["busybox"])):
        if shutil.which(argv[0]):
            vers.append((name, version(argv)))
    return [("kernel", platform.release()), ("CPUs", f"{os.cpu_count()} x {cpu}"),
            ("memory", f"{int(mem) / 1048576:.1f} GiB"), ("cgroups", cg),
            ("OS", sh(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]).stdout.strip())], vers


def ms(x):
    return f"{x * 1000:.0f}" if x >= 0.1 else f"{x * 1000:.1f}"


def report(b, started, elapsed):
    mach, vers = machine(b)
    L = ["# nsbox benchmarks", "",
         f"Generated by `bench/run.py` on {started} in {elapsed / 60:.1f} min ({b.a.runs} timed runs + "
         f"{b.a.warmup} warm-up per command unless noted). Commands of a case alternate round-robin (the order "
         "rotates each iteration); before each case the runner waited up to "
         f"{b.a.psi_wait:.0f} s for CPU pressure (PSI some avg10) below {b.a.psi} %. "
         "Times are wall-clock of the whole CLI command, in ms: median [p10–p90]. "
         "Ratio = nsbox median / peer median from the same run.", "",
         "**Noise.** This machine is shared (other engineers' test suites and a TCG VM were running); "
         "see the PSI column and treat differences under ~30 % as noise. Re-run on a quiet machine for "
         "decisions.", "", "## Machine", "", "| | |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in mach]
    L += ["", "| component | version |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in vers]
    L += ["", "Peers: runc and crun run an OCI bundle (`runc spec`, terminal=false, args=[/bin/true]) over the "
          "same busybox rootfs as nsbox's embedded image (byte-identical tar from `image/default.py`), which is "
          "also imported into podman (private `--root/--runroot/--tmpdir`) and into a private dockerd "
          "(`--data-root/--exec-root`, own socket, `--ip-forward=false`). crun and podman+crun run in a private mount namespace "
          "with /sys/fs/cgroup/unified unmounted (crun 1.8 refuses hybrid cgroups); podman uses a private "
          "CONTAINERS_CONF with `default_ulimits` nofile/nproc (root lacks CAP_SYS_RESOURCE here).", ""]
    hist = os.path.join(REPO, "docs", "benchmarks-history.md")
    if os.path.exists(hist):  # the hand-written before/after record, kept across regenerations
        with open(hist) as f:
            L += [f.read().rstrip(), ""]
    L += ["## Summary against the targets", "", "| target | measured | met? |", "|---|---|---|"]
    L += summary(b)
    L += [""]
    for case, r in b.results.items():
        L += [f"## {case}: {r['title']}", ""]
        if "skipped" in r:
            L += [f"*Skipped:* {r['skipped']}", ""]
            continue
        if case == "many":
            L += many_table(r)
            continue
        if case == "pause":
            L += [f"pause process RSS/PSS (kB): {r['mem']}", ""]
            continue
        if case == "throughput":
            L += ["nsbox container running busybox `httpd`; the load generator is this runner's own Python "
                  f"client ({b.a.tp_requests} HTTP/1.0 GETs or {b.a.tp_seconds:.0f} s per run, 4 connections "
                  "at a time, a new TCP connection per request), so it measures connection set-up + DNAT "
                  "more than bandwidth, and the client itself is a bottleneck on 2 CPUs. Runs alternate "
                  "direct / published.", "",
                  "| target | requests/s per run | median |", "|---|---|---|"]
            for label, xs in r["res"].items():
                L.append(f"| {label} | {' / '.join(f'{x:.0f}' for x in xs)} | {statistics.median(xs):.0f} |")
            L += [""]
            continue
        t = r["times"]
        ns = statistics.median(t["nsbox"]) if t.get("nsbox") else None
        L += [f"PSI some avg10 before/after: {r['psi'][0]} / {r['psi'][1]}", "",
              "| command | median ms | p10–p90 | min–max | n | nsbox / this |", "|---|---|---|---|---|---|"]
        for label, xs in t.items():
            if not xs:
                L.append(f"| {label} | failed: {r['fails'][label][:160]} | | | 0 | |")
                continue
            med = statistics.median(xs)
            ratio = f"{ns / med:.2f}x" if ns and label != "nsbox" else ""
            L.append(f"| {label} | **{ms(med)}** | {ms(pct(xs, .1))}–{ms(pct(xs, .9))} | "
                     f"{ms(min(xs))}–{ms(max(xs))} | {len(xs)} | {ratio} |")
        if r.get("note"):
            L += ["", r["note"]]
        L += [""]
    if b.notes:
        L += ["## Notes from the run", ""] + [f"* {n}" for n in b.notes] + [""]
    L += [HOWTO]
    return "\n".join(L) + "\n"


def many_table(r):
    L = [f"PSI some avg10 before/after: {r['psi'][0]} / {r['psi'][1]}", "",
         f"| engine | start {r['n']} one by one (s), median [min–max] | `rm -f` all {r['n']} (s), median "
         "[min–max] | per-container process | RSS per container (MB) | PSS per container (MB) |",
         "|---|---|---|---|---|---|"]
    for label in r["start"]:
        st, rm = r["start"][label], r["rm"][label]
        m = r["mem"].get(label, {})
        rss = f"{statistics.mean(m['rss_kb']) / 1024:.2f}" if m.get("rss_kb") else "–"
        pss = f"{statistics.mean(m['pss_kb']) / 1024:.2f}" if m.get("pss_kb") else "–"
        s1 = f"{statistics.median(st):.2f} [{min(st):.2f}–{max(st):.2f}]" if st else "failed"
        s2 = f"{statistics.median(rm):.2f} [{min(rm):.2f}–{max(rm):.2f}]" if rm else "failed"
        L.append(f"| {label} | {s1} | {s2} | {m.get('what', '?')} ×{m.get('nprocs', 0)} | {rss} | {pss} |")
    for label, f in r["fails"].items():
        L.append(f"\n{label} failed: {f}")
    srv = r["mem"].get("nsbox", {}).get("server_kb")
    if srv:
        n = max(1, r["mem"]["nsbox"].get("nprocs", 1))
        L += ["", f"nsbox's preload server with its primer and spares ({srv.get('nprocs', 1)} processes, one set per "
              f"runroot; the monitors are forked from it and share its pages): "
              f"{srv['rss'] / 1024:.2f} MB RSS, {srv['pss'] / 1024:.2f} MB PSS, i.e. "
              f"{srv['pss'] / 1024 / n:.2f} MB PSS per container with {n} running."]
    return L + ["", r["note"], ""]


def summary(b):
    rows = []
    R = b.results

    def med(case, label):
        t = R.get(case, {}).get("times", {}).get(label)
        return statistics.median(t) if t else None
    for case, targets in TARGETS.items():
        for peer, limit, text in targets:
            if case not in R or "skipped" in R[case]:
                why = R.get(case, {}).get("skipped", "not run")
                rows.append(f"| {case}: nsbox {text} | skipped ({why[:90]}) | – |")
                continue
            n, p = med(case, "nsbox"), med(case, peer)
            if n is None or p is None:
                rows.append(f"| {case}: nsbox {text} | {peer} not measured | – |")
                continue
            ratio = n / p
            rows.append(f"| {case}: nsbox {text} | {ms(n)} / {ms(p)} ms = **{ratio:.2f}x** | "
                        f"{'yes' if ratio <= limit else '**no**'} |")
    m = R.get("many")
    if m and m["mem"].get("nsbox", {}).get("pss_kb"):
        pss = statistics.mean(m["mem"]["nsbox"]["pss_kb"]) / 1024
        rss = statistics.mean(m["mem"]["nsbox"]["rss_kb"]) / 1024
        con = m["mem"].get("podman+crun", m["mem"].get("podman+runc", {}))
        extra = f" (conmon: {statistics.mean(con['pss_kb']) / 1024:.2f} MB PSS)" if con.get("pss_kb") else ""
        srv = m["mem"]["nsbox"].get("server_kb")
        if srv:
            share = srv["pss"] / 1024 / max(1, m["mem"]["nsbox"]["nprocs"])
            extra += f"; with the preload server's share: {pss + share:.2f} MB"
        rows.append(f"| monitor <= 2 MB PSS per container | {pss:.2f} MB PSS, {rss:.2f} MB RSS{extra} | "
                    f"{'yes' if pss <= 2 else '**no**'} |")
    if m and m["rm"].get("nsbox"):
        x = statistics.median(m["rm"]["nsbox"])
        rows.append(f"| `rm -f` of {m['n']} <= 1 s | {x:.2f} s | {'yes' if x <= 1 else '**no**'} |")
    p = R.get("pause")
    if p and "mem" in p and p["mem"] and p["mem"][0][0]:
        x = p["mem"][0][0] / 1024
        rows.append(f"| pause <= 1 MB RSS | {x:.2f} MB | {'yes' if x <= 1 else '**no**'} |")
    else:
        rows.append(f"| pause <= 1 MB RSS | skipped ({(p or {}).get('skipped', 'not run')[:90]}) | – |")
    t = R.get("throughput")
    if t and "res" in t and len(t["res"]) == 2:
        (dl, d), (pl, pp) = list(t["res"].items())
        x = statistics.median(pp) / statistics.median(d)
        rows.append(f"| published port >= 90 % of direct | {x * 100:.0f} % | {'yes' if x >= .9 else '**no**'} |")
    else:
        rows.append(f"| published port >= 90 % of direct | skipped ({(t or {}).get('skipped', 'not run')[:90]})"
                    " | – |")
    return rows


HOWTO = """## How to run

```sh
sudo bench/setup-peers.sh                 # once: runc crun podman docker.io hyperfine catatonit conmon skopeo buildah
sudo /opt/nsbox/venv/bin/python bench/run.py                # all cases, writes docs/benchmarks.md
sudo /opt/nsbox/venv/bin/python bench/run.py --runs 30 --no-docker --cases run-none,many
sudo /opt/nsbox/venv/bin/python bench/run.py --profile      # cProfile + -X importtime of `nsbox run`
```

Options: `--runs N` / `--warmup N` (per command), `--psi 5 --psi-wait 120` (CPU-pressure gate before each
case), `--cases a,b` (run-none, run-bridge, run-publish, create-start-rm, many, pause, rebuild, throughput,
layers), `--many 20 --many-rounds 3`, `--layers 1,16,64,128`, `--no-docker` (do not start a private dockerd),
`--out FILE`, `--nsbox PATH`. Cases whose nsbox feature is missing (bridge, `-p`, pods, build) are skipped
with the message nsbox printed; re-run when those land. Everything the runner creates (containers, private
stores, dockerd, docker0/podman0, DOCKER*/NETAVARK* chains, mounts, the temp dir) is removed at the end,
also on Ctrl-C.
"""


# ------------------------------------------------------------------------------------- profile
PROFILE_WRAPPER = """import cProfile, os, sys
out, pid, real_exit = sys.argv[1], os.getpid(), os._exit
pr = cProfile.Profile()
def _exit(code):
    if os.getpid() == pid:
        pr.disable()
        pr.dump_stats(out)
    real_exit(code)
os._exit = _exit
sys.argv = ["nsbox"] + sys.argv[2:]
pr.enable()
try:
    from nsbox.cli.main import main
    main()
except SystemExit:
    pass
finally:
    pr.disable()
    pr.dump_stats(out)
"""

def profile(a):
    import pstats
    tmp = tempfile.mkdtemp(prefix="nsbox-prof-")
    try:
        base = [a.nsbox, "--root", f"{tmp}/root", "--runroot", f"{tmp}/run"]
        py = os.path.join(os.path.dirname(a.nsbox), "python")
        sh(base + ["run", "--rm", "--network", "none", "busybox", "true"], check=True)  # builds the image
        argv = ["run", "--rm", "--network", "none", "busybox", "true"]
        ts = [timed(base + argv)[0] for _ in range(5)]
        print(f"== nsbox run --rm --network none busybox true: wall {[round(t * 1000) for t in ts]} ms")
        prof = f"{tmp}/run.prof"
        # the CLI leaves through os._exit(container's code), so `python -m cProfile` never dumps: wrap it
        wrapper = f"{tmp}/prof.py"
        with open(wrapper, "w") as f:
            f.write(PROFILE_WRAPPER)
        sh([py, wrapper, prof] + base[1:] + argv, check=True)
        st = pstats.Stats(prof, stream=sys.stdout)
        print("\n== cProfile of the CLI process, top by cumulative time")
        st.sort_stats("cumulative").print_stats(30)
        print("\n== top by own time")
        st.sort_stats("tottime").print_stats(15)
        print("== subprocess / fork / exec / sleep / wait calls in the CLI")
        st.sort_stats("cumulative").print_stats(r"Popen|fork|posix_spawn|_execute_child|waitpid|sleep|select|poll|"
                                                r"recv|accept|communicate|_wait")
        # the warm path: the same command through the preload server, profiled in its worker
        sh(base + ["version"])
        for _ in range(50):
            if os.path.exists(f"{tmp}/run/preload.sock"):
                break
            time.sleep(0.1)
        wprof = f"{tmp}/worker.prof"
        env = dict(os.environ, NSBOX_PROFILE=wprof)
        subprocess.run(base + argv, env=env, capture_output=True, timeout=120)
        if os.path.exists(wprof):
            st = pstats.Stats(wprof, stream=sys.stdout)
            print("\n== cProfile of the worker the preload server forked for it (the warm path), top by "
                  "cumulative time")
            st.sort_stats("cumulative").print_stats(25)
        else:
            print("\n== no worker profile: the preload server did not take the command")
        r = sh([py, "-X", "importtime", a.nsbox] + base[1:] + argv, env=dict(os.environ, NSBOX_PRELOAD="0"))
        rows = []
        for line in r.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)), m.group(4)))
        total = sum(x[1] for x in rows)
        print(f"\n== -X importtime: {len(rows)} modules, {total / 1000:.0f} ms self total; top cumulative "
              "(top-level imports, depth <= 2):")
        for cum, self_, depth, mod in sorted([x for x in rows if x[2] <= 2], reverse=True)[:25]:
            print(f"{cum / 1000:8.1f} ms cum {self_ / 1000:7.1f} ms self  {'  ' * (depth - 1)}{mod}")
        print("\n== heaviest third-party / stdlib packages (cumulative of their top-level import):")
        seen = {}
        for cum, _, _, mod in rows:
            top = mod.split(".")[0]
            seen[top] = max(seen.get(top, 0), cum)
        for top, cum in sorted(seen.items(), key=lambda x: -x[1])[:15]:
            print(f"{cum / 1000:8.1f} ms  {top}")
        if shutil.which("strace"):
            sh(["strace", "-f", "-ttt", "-qq", "-e", "trace=execve,clone,clone3,vfork,fork,unshare,setns,mount,"
                "pivot_root,connect,accept4,wait4,exit_group", "-o", f"{tmp}/st"] + base + argv, timeout=120)
            lines = open(f"{tmp}/st").read().splitlines()
            t0 = float(lines[0].split()[1]) if lines else 0
            print(f"\n== strace -f timeline (CLI + monitor + container), ms since the CLI's execve; "
                  f"{sum('execve(' in x for x in lines)} execve, "
                  f"{sum(bool(re.search(r'(clone3?|v?fork)[(]', x)) for x in lines)} clone/fork, "
                  f"{sum('mount(' in x for x in lines)} mount")
            for ln in lines:
                pid, ts, rest = ln.split(None, 2)
                if re.match(r"(execve|clone3?|vfork|fork|unshare|setns|pivot_root|exit_group|connect|accept4)\(",
                            rest) or "resumed> )" in rest and "clone" in rest:
                    print(f"{(float(ts) - t0) * 1000:8.1f}  pid {pid:>7}  {rest[:150]}")
        mon = sh([py, "-I", "-X", "importtime", "-c", "import nsbox.runtime.monitor as m, sys, os; "
                  "print(len(sys.modules), [l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"])
        try:
            nmods, rss = mon.stdout.split()
            rows = []
            for line in mon.stderr.splitlines():
                m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
                if m and len(m.group(3)) <= 3:
                    rows.append((int(m.group(2)), m.group(4)))
            print(f"\n== the monitor (`python -I -c 'from nsbox.runtime.monitor import main'`): {nmods} modules "
                  f"loaded, VmRSS {int(rss) / 1024:.1f} MB right after import; top imports (cumulative ms):")
            for cum, mod in sorted(rows, reverse=True)[:12]:
                print(f"{cum / 1000:8.1f} ms  {mod}")
        except ValueError:
            print("monitor import check failed:", mon.stderr[-300:])
        pyc = sh([py, "-c", "import sys; print(sys.flags.dont_write_bytecode)"]).stdout.strip()
        print(f"\nPYTHONDONTWRITEBYTECODE in effect: {pyc} (1 means modules without cached .pyc compile at "
              "every start)")
    finally:
        with contextlib.suppress(Exception):
            ids = sh([a.nsbox, "--root", f"{tmp}/root", "--runroot", f"{tmp}/run", "ps", "-aq"]).stdout.split()
            if ids:
                sh([a.nsbox, "--root", f"{tmp}/root", "--runroot", f"{tmp}/run", "rm", "-f"] + ids)
        with contextlib.suppress(Exception):
            from nsbox.runtime.cleanup import purge_root
            from nsbox.runtime.paths import Paths
            purge_root(Paths(f"{tmp}/root", f"{tmp}/run"))  # the preload server and cgroup parent too
        Bench.unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------- main
ALL_CASES = ["run-none", "run-bridge", "run-publish", "create-start-rm", "many", "pause", "rebuild",
             "throughput", "layers"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--psi", type=float, default=10.0, help="CPU PSI some avg10 threshold, %%")
    ap.add_argument("--psi-wait", type=float, default=60.0, help="max seconds to wait for it")
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--many", type=int, default=20)
    ap.add_argument("--many-rounds", type=int, default=3)
    ap.add_argument("--layers", default="1,16,64,128")
    ap.add_argument("--tp-requests", type=int, default=3000)
    ap.add_argument("--tp-seconds", type=float, default=5.0)
    ap.add_argument("--docker", dest="docker", action="store_true", default=True)
    ap.add_argument("--no-docker", dest="docker", action="store_false")
    ap.add_argument("--nsbox", default=shutil.which("nsbox") or DEFAULT_NSBOX)
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
    ap.add_argument("--json", help="also dump the raw timings to this file")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.nsbox):
        a.nsbox = DEFAULT_NSBOX
    if os.geteuid() != 0:
        sys.exit("bench/run.py must run as root")
    if a.profile:
        return profile(a)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.monotonic()
    b = Bench(a)
    done = [False]

    def finish():
        if not done[0]:
            done[0] = True
            log("cleaning up")
            b.cleanup()
    atexit.register(finish)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        b.setup()
        log(f"available: {sorted(k for k, v in b.have.items() if v)}")
        cases = a.cases.split(",")
        table = {"run-none": lambda: b.case_run("run-none", "`run --rm --network none IMG true`", "none"),
                 "run-bridge": lambda: b.case_run("run-bridge", "`run --rm IMG true` on the default bridge",
                                                  "bridge"),
                 "run-publish": lambda: b.case_run("run-publish", "`run --rm -p 127.0.0.1:PORT:80 IMG true`",
                                                   "publish"),
                 "create-start-rm": b.case_lifecycle, "many": b.case_many, "pause": b.case_pause,
                 "rebuild": b.case_rebuild, "throughput": b.case_throughput, "layers": b.case_layers}
        for c in cases:
            try:
                table[c]()
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001
                log(f"{c}: error {e!r}")
                b.results[c] = {"title": c, "skipped": f"runner error: {e!r}"}
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"results": b.results, "notes": b.notes, "started": started,
                           "elapsed": time.monotonic() - t0}, f, indent=1, default=str)
        text = report(b, started, time.monotonic() - t0)
        with open(a.out, "w") as f:
            f.write(text)
        log(f"wrote {a.out}")
    finally:
        finish()


if __name__ == "__main__":
    main()
