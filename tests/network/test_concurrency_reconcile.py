"""50 concurrent attaches on one bridge; SIGKILL in the middle of setup + reconcile leaves nothing."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess

import pytest

from nsbox.network import api, config, fileio, ipam, nat, netns
from nsbox.network.model import NetworkRequest, PortMapping

from nsnet_helpers import BUSYBOX, leftovers

N = 50


def _child_attach(env, cid: str, w: int, req: NetworkRequest) -> None:
    code = 1
    try:
        os.makedirs(env.paths.container_dir(cid), exist_ok=True)
        path = netns.create_netns(env.paths, cid)
        st = api.attach(env.paths, cid, path, req)
        os.write(w, (json.dumps({"cid": cid, "ip": st.IPAddress}) + "\n").encode())
        code = 0
    except BaseException as e:  # noqa: BLE001
        os.write(w, (json.dumps({"cid": cid, "error": repr(e)}) + "\n").encode())
    finally:
        os._exit(code)


@pytest.mark.slow
def test_50_concurrent_attaches_unique_and_reachable(env):
    import nsbox.network.links  # noqa: F401  (load pyroute2 once, before forking)
    cids = [secrets.token_hex(32) for _ in range(N)]
    env.cids += cids
    r, w = os.pipe()
    pids = []
    for cid in cids:
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child_attach(env, cid, w, NetworkRequest(name=cid[:8]))
        pids.append(pid)
    os.close(w)
    with os.fdopen(r) as f:
        results = [json.loads(line) for line in f]
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    errors = [x for x in results if "error" in x]
    assert not errors and codes == [0] * N
    ips = [x["ip"] for x in results]
    assert len(set(ips)) == N
    cfg = config.get_network(env.paths, "bridge")
    assert sorted(ipam.endpoints(env.paths, cfg.id)) == sorted(ips)
    for ip in ips:  # every one reachable from the host
        assert subprocess.run([BUSYBOX, "ping", "-c1", "-W1", ip], capture_output=True).returncode == 0, ip
    first = netns.netns_path(env.paths, results[0]["cid"])
    for ip in ips[1:6]:  # and from a peer
        assert subprocess.run(["nsenter", f"--net={first}", BUSYBOX, "ping", "-c1", "-W1", ip],
                              capture_output=True).returncode == 0


def _stall(*_a, **_k):
    """Stand-in for the next setup step: tell the parent we got here, then hang until SIGKILLed."""
    os.write(int(os.environ["NSBOX_TEST_STALL_FD"]), b"x")
    signal.pause()


@pytest.mark.parametrize("stop_at", ["after_veth", "after_dnat"])
def test_sigkill_midway_then_reconcile(env, stop_at):
    env.container("keep")  # a live container that reconcile must not touch
    keep_cid = env.cids[-1]
    cid = secrets.token_hex(32)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            os.environ["NSBOX_TEST_STALL_FD"] = str(w)
            if stop_at == "after_veth":
                nat.apply = _stall          # the first nft load after the veth exists: the DNAT table
            else:
                api._save_status = _stall   # everything is made, the status record is not
            os.makedirs(env.paths.container_dir(cid))
            path = netns.create_netns(env.paths, cid)
            api.attach(env.paths, cid, path, NetworkRequest(ports=[PortMapping(80)]))
        finally:
            os._exit(code)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert got == b"x"
    # half-made state exists
    cfg = config.get_network(env.paths, "bridge")
    assert cid in [x["cid"] for x in ipam.endpoints(env.paths, cfg.id).values()]
    assert os.path.exists(netns.netns_path(env.paths, cid))
    # the container never made it: its dir is gone (the core removes it on a failed create)
    os.rmdir(env.paths.container_dir(cid))
    report = api.reconcile(env.paths)
    assert report["netns"] == [cid]
    assert not os.path.exists(netns.netns_path(env.paths, cid))
    assert [x["cid"] for x in ipam.endpoints(env.paths, cfg.id).values()] == [keep_cid]
    assert nat.container_table(env.paths, cid) not in nat.list_tables(nat.prefix(env.paths))
    assert all(x["cid"] != cid for x in fileio.read_json(os.path.join(env.paths.networks, "ports.json"), []))
    tag = f"nsbox:{fileio.root_tag(env.paths)}:{cid}"

    def veth_gone() -> bool:
        for dev in os.listdir("/sys/class/net"):
            try:
                if open(f"/sys/class/net/{dev}/ifalias").read().strip() == tag:
                    return False
            except OSError:
                pass
        return True
    assert veth_gone()
    # the live container still works, and a second reconcile is a no-op
    assert os.path.exists(netns.netns_path(env.paths, keep_cid))
    assert api.reconcile(env.paths) == {"netns": [], "tables": [], "veths": [], "addresses": []}


def test_purge_leaves_nothing(env):
    net = config.create_network(env.paths, f"pg{env.tag}", subnet=__import__("nsnet_helpers").free_subnet(env.taken))
    from nsbox.network.model import EndpointRequest
    env.container("a", ports=[PortMapping(80)])
    env.container("b", networks=[EndpointRequest(net.name)])
    assert leftovers(env.paths, env.bridge)
    api.purge(env.paths)
    assert not os.path.exists(f"/sys/class/net/{net.bridge}")
    assert leftovers(env.paths, env.bridge) == []
