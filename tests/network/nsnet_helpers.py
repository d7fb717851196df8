"""Helpers for network tests on real kernel objects.

Every kernel object gets a name derived from this test's unique tag (bridge nsbt<hex>, subnet a free
10.2xx.y.0/24, nft tables nsbox-<root hash>-..., netns files under a tmp runroot); finalizers remove all
of it even on failure, then assert nothing of this root is left.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import signal
import subprocess
import time

import pytest

from nsbox.runtime.paths import Paths

BUSYBOX = "/bin/busybox"


def _used_subnets() -> list[ipaddress.IPv4Network]:
    from nsbox.network.subnets import host_routes
    nets = host_routes()
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.IPv4Network(parts[parts.index("inet") + 1], strict=False))
    return nets


def free_subnet(taken: list[ipaddress.IPv4Network] | None = None) -> str:
    """A random 10.200-254.x.0/24 that no host route, address or earlier pick uses."""
    used = _used_subnets() + list(taken or [])
    for _ in range(1000):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            (taken if taken is not None else []).append(net)
            return str(net)
    raise RuntimeError("no free test subnet")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


class Env:
    """One state root with its own default bridge, plus helpers that clean up after themselves."""

    def __init__(self, tmp_path, tag: str, taken: list):
        from nsbox.network import config
        self.tag = tag
        self.taken = taken
        self.paths = Paths(str(tmp_path / "root"), str(tmp_path / "run"))
        self.bridge = f"nsbt{tag}"
        self.subnet = free_subnet(taken)
        config.write_settings(self.paths, self.bridge, self.subnet)
        self.procs: list[subprocess.Popen] = []
        self.cids: list[str] = []
        self.extra_links: list[str] = []

    # --- containers (a netns file + container dir standing in for the core's container)
    def container(self, name: str = "", req=None, **kw):
        from nsbox.network import api, netns
        from nsbox.network.model import NetworkRequest
        cid = secrets.token_hex(32)
        self.cids.append(cid)
        os.makedirs(self.paths.container_dir(cid))
        with open(os.path.join(self.paths.container_dir(cid), "hosts"), "w") as f:
            f.write(f"127.0.0.1\tlocalhost\n{'' if not name else '127.0.1.1 ' + name}\n")
        path = netns.create_netns(self.paths, cid)
        req = req or NetworkRequest(name=name, **kw)
        if not req.name:
            req.name = name
        st = api.attach(self.paths, cid, path, req)
        return Ctr(self, cid, path, st)

    def spawn(self, netns_path: str, *cmd: str) -> subprocess.Popen:
        p = subprocess.Popen(["nsenter", f"--net={netns_path}", *cmd],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        from nsbox.network import api, netns
        for p in self.procs:  # only processes this test started, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
        for cid in self.cids:
            with contextlib.suppress(Exception):
                api.detach(self.paths, cid)
            netns.remove_netns(self.paths, cid)
        for link in self.extra_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        api.purge(self.paths)


class Ctr:
    def __init__(self, env: Env, cid: str, netns_path: str, status):
        self.env, self.cid, self.netns, self.status = env, cid, netns_path, status

    @property
    def ip(self) -> str:
        return self.status.IPAddress

    def run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net={self.netns}", *cmd], capture_output=True, text=True,
                              timeout=timeout)

    def ping(self, ip: str) -> bool:
        return self.run(BUSYBOX, "ping", "-c1", "-W1", ip).returncode == 0

    def http_get(self, url: str) -> str | None:
        r = self.run("timeout", "5", BUSYBOX, "wget", "-q", "-O", "-", url)
        return r.stdout if r.returncode == 0 else None

    def serve_http(self, text: str, port: int = 80) -> None:
        www = os.path.join(self.env.paths.container_dir(self.cid), "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write(text)
        self.env.spawn(self.netns, BUSYBOX, "httpd", "-f", "-p", str(port), "-h", www)

    def hosts_file(self) -> str:
        return os.path.join(self.env.paths.container_dir(self.cid), "hosts")

    def resolve_ping(self, name: str) -> bool:
        """Ping by name through the generated hosts file, bind-mounted as /etc/hosts (like the core does)."""
        r = self.run("unshare", "-m", "sh", "-c",
                     f"mount --bind {self.hosts_file()} /etc/hosts && {BUSYBOX} ping -c1 -W1 {name}")
        return r.returncode == 0


def leftovers(paths: Paths, bridge: str) -> list[str]:
    """Kernel objects and files of this root still present."""
    from nsbox.network import fileio, nat
    out = []
    if os.path.exists(f"/sys/class/net/{bridge}"):
        out.append(f"bridge {bridge}")
    tag = f"nsbox:{fileio.root_tag(paths)}:"
    for dev in os.listdir("/sys/class/net"):
        with contextlib.suppress(OSError), open(f"/sys/class/net/{dev}/ifalias") as f:
            if f.read().startswith(tag):
                out.append(f"veth {dev}")
    out += [f"nft {t}" for t in nat.list_tables(nat.prefix(paths))]
    with contextlib.suppress(FileNotFoundError):
        out += [f"netns {n}" for n in os.listdir(paths.netns_dir)]
    with open("/proc/self/mountinfo") as f:
        out += [f"mount {line.split()[4]}" for line in f if paths.runroot in line]
    return out


def retry(fn, tries: int = 50, delay: float = 0.1):
    """Wait for a server to come up (not a timing assertion: it only bounds the wait)."""
    last = None
    for _ in range(tries):
        last = fn()
        if last:
            return last
        time.sleep(delay)
    return last
