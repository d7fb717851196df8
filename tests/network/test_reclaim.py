"""Reconciliation lists every object first and judges owners afterwards: a container that starts
while reconcile runs keeps what it makes, wherever reconcile happens to be when it starts."""
from __future__ import annotations

import contextlib
import os
import shutil

from nsbox.network import api, config, fileio, hostports, ipam, nat, netns
from nsbox.network.model import PortMapping
from nsbox.network.reclaim import list_owned
from nsbox_testlib import lock_is_free

LOCAL = [PortMapping(80, "tcp", "127.0.0.1", 0)]   # an ephemeral host port on loopback


def _holds_everything(env, c) -> list[str]:
    """What of c's network objects is missing."""
    cfg = config.get_network(env.paths, "bridge")
    missing = []
    if nat.container_table(env.paths, c.cid) not in nat.list_tables(nat.prefix(env.paths)):
        missing.append("dnat table")
    if not os.path.exists(netns.netns_path(env.paths, c.cid)):
        missing.append("netns")
    if c.cid not in [r["cid"] for r in ipam.endpoints(env.paths, cfg.id).values()]:
        missing.append("address")
    if c.cid not in hostports.holders(env.paths):
        missing.append("host port")
    if api.load_status(env.paths, c.cid) is None:
        missing.append("status")
    return missing


def test_a_start_at_any_point_of_reconcile_keeps_its_objects(env):
    import nsbox.network.links  # noqa: F401  (pyroute2 loaded before the sweep)
    keep = env.container("keep", ports=LOCAL)
    cfg = config.get_network(env.paths, "bridge")
    # a start cannot happen while this reconcile holds the IPAM or port-registry lock (it would wait)
    locks = [ipam.net_lock(env.paths, cfg.id), os.path.join(env.paths.networks, "ports.lock"),
             config.lock_path(env.paths)]
    started = 0
    for point in range(1, 60):   # the n-th judgement of an owner is where the newcomer starts
        dead = env.container("dead", ports=LOCAL)
        shutil.rmtree(env.paths.container_dir(dead.cid))   # gone: its objects are leftovers now
        calls: list[str] = []
        newcomer = []

        def alive(cid: str) -> bool:
            verdict = os.path.isdir(env.paths.container_dir(cid))
            calls.append(cid)
            # the scheduler pauses this reconcile right after a verdict; a whole start-up fits in the pause
            if len(calls) >= point and not newcomer and all(lock_is_free(lk) for lk in locks):
                newcomer.append(env.container("new", ports=LOCAL))
            return verdict

        api.reconcile(env.paths, alive)
        assert _holds_everything(env, keep) == []
        assert not os.path.exists(netns.netns_path(env.paths, dead.cid))
        assert nat.container_table(env.paths, dead.cid) not in nat.list_tables(nat.prefix(env.paths))
        assert dead.cid not in hostports.holders(env.paths)
        if not newcomer:
            break   # past the last judgement
        started += 1
        assert _holds_everything(env, newcomer[0]) == [], f"a start at judgement {point} of {len(calls)}"
        # the same two owners (keep, dead) in every round, so the sweep covers every judgement
        api.detach(env.paths, newcomer[0].cid)
        netns.remove_netns(env.paths, newcomer[0].cid)
        shutil.rmtree(env.paths.container_dir(newcomer[0].cid))
    assert started >= 2


def test_listing_maps_short_table_names_to_their_owners(env):
    a = env.container("a", ports=LOCAL)
    # a leftover table whose container directory is gone: keyed by its short id, judged gone
    stray = "f" * 64
    nat.apply(nat.render_container(nat.container_table(env.paths, stray), "10.0.0.9", [PortMapping(80, "tcp", "", 1)]))
    try:
        owned = list_owned(env.paths)
        assert owned[a.cid].tables == [nat.container_table(env.paths, a.cid)]
        assert owned[a.cid].netns and owned[a.cid].ports and owned[a.cid].status
        assert owned[a.cid].veths == [a.status.Networks["bridge"].HostIfName]   # found by its ifalias
        assert owned[a.cid].networks == [config.get_network(env.paths, "bridge").id]
        assert owned[stray[:12]].tables == [nat.container_table(env.paths, stray)]
        report = api.reconcile(env.paths)
        assert report["tables"] == [nat.container_table(env.paths, stray)]
        assert _holds_everything(env, a) == []
    finally:
        nat.delete_table(nat.container_table(env.paths, stray))


def test_mine_is_reclaimed_even_while_its_start_is_judged_alive(env):
    """The starting container's own leftovers (an earlier start killed midway) are garbage to it."""
    c = env.container("again", ports=LOCAL)
    report = api.reconcile(env.paths, lambda cid: True, mine=c.cid)
    assert report["netns"] == [c.cid]
    assert c.cid not in hostports.holders(env.paths) and api.load_status(env.paths, c.cid) is None
    with contextlib.suppress(FileNotFoundError):
        assert c.cid not in [r["cid"] for r in fileio.read_json(
            os.path.join(env.paths.networks, "ipam", config.get_network(env.paths, "bridge").id + ".json"), {}).values()]


def test_an_attach_that_looked_up_a_network_just_removed_makes_nothing(env):
    """`network rm` between an attach's lookup and its address: the attach must not bring the
    removed network's records or bridge back (a bridge and table nobody would ever delete)."""
    import pytest

    from nsbox.network.model import EndpointRequest, NetworkRequest
    from nsbox.runtime.errors import NotFound
    from nsnet_helpers import free_subnet
    net = config.create_network(env.paths, f"rm{env.tag}", subnet=free_subnet(env.taken))
    env.container("user", networks=[EndpointRequest(net.name)])   # its bridge exists
    api.detach(env.paths, env.cids[-1])
    stale = config.get_network(env.paths, net.name)   # looked up by an attach that is about to allocate
    api.remove_network(env.paths, net.name)
    assert not os.path.exists(f"/sys/class/net/{net.bridge}")
    with pytest.raises(NotFound):
        ipam.allocate(env.paths, stale, "e" * 64)
    assert not os.path.exists(os.path.join(env.paths.networks, "ipam", net.id + ".json"))
    # and the whole attach path, with the stale config handed in the same way
    cid = "a" * 64
    os.makedirs(env.paths.container_dir(cid))
    env.cids.append(cid)
    path = netns.create_netns(env.paths, cid)
    orig = config.get_network
    config.get_network = lambda paths, name: stale if name == net.name else orig(paths, name)
    try:
        with pytest.raises(NotFound):
            api.attach(env.paths, cid, path, NetworkRequest(networks=[EndpointRequest(net.name)]))
    finally:
        config.get_network = orig
    assert not os.path.exists(f"/sys/class/net/{net.bridge}")
    assert nat.network_table(env.paths, stale) not in nat.list_tables(nat.prefix(env.paths))
