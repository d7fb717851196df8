"""Shared fixtures: every test run gets its own state root, and nothing may outlive the run.

* NSBOX_ROOT / NSBOX_RUNROOT point into a per-run temp dir, so tests never touch a user's
  containers (and the cgroup parent, derived from the root, is unique too).
* `nsbox(...)` runs the real CLI as a subprocess, the way a user does.
* After each test its containers are force-removed; at the end of the run the leak check fails
  the run if mounts, netns files, links, cgroups, nft tables or processes made by it remain.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, settings

# CI and this 2-core machine are shared and loaded: no per-example deadline, no slow-data health check
settings.register_profile("nsbox", deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])
settings.load_profile("nsbox")


def pytest_configure(config):
    # registered here, not in pyproject.toml: that file is part of the VM lane image's cache key
    config.addinivalue_line("markers", "hostlane: a heavy test that does not depend on the cgroup "
                            "hierarchy: host lane only, even in a module marked vm (TCG makes it minutes long)")

from nsbox_testlib import NSBOX_BIN, wait_for  # noqa: F401  (re-exported for older imports)


def _snapshot(base: str, paths, tmp_base: str = "") -> dict:
    """Kernel objects and processes that belong to this run (and only those: other runs and
    tools may share the machine), named by its temp dir, root tag, bridge or cgroup parent."""
    import json as _json
    from nsbox.network.config import settings_path
    tag = paths.tag
    try:
        with open(settings_path(paths)) as f:
            bridge = _json.load(f).get("bridge", "")
    except OSError:
        bridge = ""
    mounts = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(base):
                mounts.add(point)
    links = set()
    for dev in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{dev}/ifalias") as f:
                alias = f.read().strip()
        except OSError:
            alias = ""
        if dev == bridge or tag in alias:
            links.add(dev)
    nft = set()
    if shutil.which("nft"):
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        nft = {line.strip() for line in out.splitlines() if f"nsbox-{tag}" in line}
    cgroups = set()
    for base_cg in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in os.listdir("/sys/fs/cgroup"))):
        p = os.path.join(base_cg, paths.cgroup_parent)
        if os.path.isdir(p):
            for dirpath, dirnames, _ in os.walk(p):
                cgroups.add(dirpath)
    procs = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # tmp_base: tests with a root of their own under pytest's tmp_path (a preload server
        # or monitor for it must not outlive the run either)
        if base in cmd or (tmp_base and tmp_base in cmd):
            procs.add(f"{pid}: {cmd[:120]}")
    return {"mounts": mounts, "links": links, "nft": nft, "cgroups": cgroups, "procs": procs}


@pytest.fixture(scope="session")
def nsbox_env(tmp_path_factory):
    base = tempfile.mkdtemp(prefix="nsbox-test-", dir="/var/tmp")
    root, runroot = os.path.join(base, "root"), os.path.join(base, "run")
    # NSBOX_LOOPBACK_ONLY: the registry client refuses any non-loopback host, so a test naming an
    # unknown image never reaches (or even resolves) Docker Hub
    env = dict(os.environ, NSBOX_ROOT=root, NSBOX_RUNROOT=runroot, NSBOX_LOOPBACK_ONLY="1")
    env.pop("NSBOX_DEBUG", None)
    from nsbox.runtime.paths import Paths
    paths = Paths(root, runroot)
    # a bridge and subnet of this run's own, so it never meets a user's nsbox0 or another run
    from nsbox.network.config import write_settings
    tag = os.path.basename(base)[-6:].lower()
    write_settings(paths, bridge=f"nsbt{tag}", subnet=_free_subnet())
    tmp_base = str(tmp_path_factory.getbasetemp())
    before = _snapshot(base, paths, tmp_base)
    yield {"env": env, "root": root, "runroot": runroot, "paths": paths, "base": base}
    # the whole run's teardown: remove what is left, then look for leaks
    _remove_all(env)
    # commands still running in this run's preload server (titled "nsbox <verb> ...", without our
    # paths, so _snapshot cannot tell them from another run's): found as the server's children
    # (a worker whose client has just returned may still be exiting: wait for it, bounded)
    deadline = time.monotonic() + 10
    while (stray := _server_workers(runroot)) and time.monotonic() < deadline:
        time.sleep(0.1)
    from nsbox.runtime.cleanup import purge_root
    purge_root(paths)
    deadline = time.monotonic() + 10
    while True:
        after = _snapshot(base, paths, tmp_base)
        leaks = {k: sorted(str(x) for x in after[k] - before[k]) for k in after if after[k] - before[k]}
        if stray:
            leaks["procs (commands left in the preload server)"] = stray
        if not leaks or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    shutil.rmtree(base, ignore_errors=True)
    if leaks:
        pytest.fail("the test run leaked kernel objects or processes:\n" + json.dumps(leaks, indent=1))


def _server_workers(runroot: str) -> list[str]:
    from nsbox.runtime.preload import _is_server_of
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    procs[int(d)] = (ppid, f.read().replace(b"\0", b" ").decode(errors="replace").strip())
            except (OSError, ValueError, IndexError):
                continue
    servers = {pid for pid in procs if _is_server_of(pid, runroot)}
    return [f"{pid}: {cmd[:120]}" for pid, (ppid, cmd) in procs.items()
            if ppid in servers and cmd.startswith("nsbox ")]


def _remove_all(env: dict) -> None:
    ids = subprocess.run([NSBOX_BIN, "ps", "-aq", "--no-trunc"], env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run([NSBOX_BIN, "rm", "-f", *ids], env=env, capture_output=True, text=True, timeout=120)
    pods = subprocess.run([NSBOX_BIN, "pod", "ps", "-q"], env=env, capture_output=True, text=True)
    if pods.returncode == 0 and pods.stdout.split():
        subprocess.run([NSBOX_BIN, "pod", "rm", "-f", *pods.stdout.split()], env=env, capture_output=True,
                       text=True, timeout=120)


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no host route overlaps."""
    import ipaddress
    import random
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in out.split("\n"):
        word = line.split(" ")[0] if line else ""
        if word and word[0].isdigit():
            try:
                taken.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    rnd = random.Random(os.getpid())
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{rnd.randrange(200, 250)}.{rnd.randrange(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise RuntimeError("no free subnet for the test bridge")


class Nsbox:
    def __init__(self, env: dict):
        self.env = env
        self.root = env["NSBOX_ROOT"]
        self.runroot = env["NSBOX_RUNROOT"]

    def __call__(self, *args, input=None, timeout=120, check=False, env=None) -> subprocess.CompletedProcess:
        r = subprocess.run([NSBOX_BIN, *map(str, args)], env={**self.env, **(env or {})}, input=input,
                           capture_output=True, text=isinstance(input, str) or input is None, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"nsbox {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ok(self, *args, **kw) -> str:
        return self(*args, check=True, **kw).stdout

    def inspect(self, ref: str) -> dict:
        return json.loads(self.ok("inspect", ref))[0]

    def popen(self, *args, **kw) -> subprocess.Popen:
        return subprocess.Popen([NSBOX_BIN, *map(str, args)], env=self.env, **kw)


@pytest.fixture
def nsbox(nsbox_env):
    n = Nsbox(nsbox_env["env"])
    yield n
    _remove_all(nsbox_env["env"])


@pytest.fixture
def paths(nsbox_env):
    return nsbox_env["paths"]
