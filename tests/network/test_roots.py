"""Two state roots on one machine: each default network has a bridge of its own, and no root attaches
to, changes or deletes another root's bridge, nft tables or addresses."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from nsbox.network import bridges, config, fileio, nat
from nsbox.runtime.paths import Paths
from nsbox_testlib import NSBOX_BIN, http_answers, wait_for

from nsnet_helpers import free_subnet, require_root

WEB = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


class Root:
    def __init__(self, base_env: dict, where: str, settings: dict):
        self.paths = Paths(os.path.join(where, "root"), os.path.join(where, "run"))
        self.env = dict(base_env, NSBOX_ROOT=self.paths.root, NSBOX_RUNROOT=self.paths.runroot)
        fileio.write_json(config.settings_path(self.paths), settings)

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([NSBOX_BIN, *args], env=self.env, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout

    def inspect(self, ref: str) -> dict:
        import json
        return json.loads(self.ok("inspect", ref))[0]

    def network(self) -> config.NetworkConfig:
        return config.get_network(self.paths, "bridge")

    def remove(self) -> None:
        ids = self("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            self("rm", "-f", *ids)
        from nsbox.runtime.cleanup import purge_root
        purge_root(self.paths)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Root, port: int) -> dict:
    cid = root.ok("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", WEB).strip()
    ns = root.inspect(cid)["NetworkSettings"]
    assert wait_for(lambda: http_answers(f"http://{ns['IPAddress']}/"), timeout=60)
    return {"cid": cid, "port": port, **ns}


def _bridge_of(host_ifname: str) -> str:
    return os.path.basename(os.readlink(f"/sys/class/net/{host_ifname}/master"))


@pytest.fixture
def roots(nsbox_env, tmp_path):
    require_root()
    made: list[Root] = []
    taken: list = []

    def make(name: str, **settings) -> Root:
        settings.setdefault("subnet", free_subnet(taken))
        r = Root(nsbox_env["env"], str(tmp_path / name), settings)
        made.append(r)
        return r
    yield make
    for r in reversed(made):
        r.remove()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_two_roots_each_get_a_bridge_of_their_own(roots):
    a, b = roots("a"), roots("b")   # no bridge pinned: each is named from its root
    ca, cb = _serve(a, _port()), _serve(b, _port())
    na, nb = a.network(), b.network()
    assert na.bridge == f"nsbox-{a.paths.tag}" and nb.bridge == f"nsbox-{b.paths.tag}"
    for root, net, c in ((a, na, ca), (b, nb, cb)):
        assert c["Gateway"] == net.gateway
        assert bridges.primary_address(net.bridge) == net.gateway
        assert bridges.owner(root.paths, net) == bridges.OURS
        assert _bridge_of(c["Networks"]["bridge"]["HostIfName"]) == net.bridge
        assert wait_for(lambda c=c: http_answers(f"http://127.0.0.1:{c['port']}/"), timeout=10)
    # a start in each root reconciles that root only
    a.ok("run", "--rm", "busybox", "true")
    b.ok("run", "--rm", "busybox", "true")
    for root, c in ((a, ca), (b, cb)):
        assert nat.container_table(root.paths, c["cid"]) in nat.list_tables(nat.prefix(root.paths))
        assert http_answers(f"http://127.0.0.1:{c['port']}/")
    # removing everything of root b leaves root a working
    b.remove()
    assert not bridges.exists(nb.bridge)
    assert bridges.owner(a.paths, na) == bridges.OURS
    assert http_answers(f"http://127.0.0.1:{ca['port']}/")


def test_a_bridge_owned_by_another_root_is_refused_and_left_alone(roots):
    a = roots("a")
    ca = _serve(a, _port())
    na = a.network()
    c = roots("c", bridge=na.bridge)   # pinned to a's bridge
    r = c("run", "--rm", "-p", f"127.0.0.1:{_port()}:80", "busybox", "true")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "belongs to another nsbox state root" in r.stderr
    c.remove()   # c's purge does not delete or change a's bridge
    assert bridges.owner(a.paths, na) == bridges.OURS and bridges.primary_address(na.bridge) == na.gateway
    assert http_answers(f"http://127.0.0.1:{ca['port']}/")
    assert nat.list_tables(nat.prefix(c.paths)) == []


def test_a_root_that_recorded_another_roots_bridge_moves_to_its_own(roots):
    """An older nsbox gave a second root's default network the first root's bridge name."""
    a = roots("a")
    ca = _serve(a, _port())
    na = a.network()
    d = roots("d", bridge=na.bridge)
    config.ensure_default(d.paths)                 # recorded with a's bridge, as the old default did
    fileio.write_json(config.settings_path(d.paths), {"subnet": d.network().subnet})   # nothing pinned now
    cd = _serve(d, _port())
    nd = d.network()
    assert nd.bridge == f"nsbox-{d.paths.tag}" and _bridge_of(cd["Networks"]["bridge"]["HostIfName"]) == nd.bridge
    assert wait_for(lambda: http_answers(f"http://127.0.0.1:{cd['port']}/"), timeout=10)
    assert http_answers(f"http://127.0.0.1:{ca['port']}/")
