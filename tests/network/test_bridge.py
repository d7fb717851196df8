"""Bridge attach on real kernel objects: connectivity, isolation, name resolution, connect/disconnect."""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from nsbox.network import api, config, hosts, ipam, netns
from nsbox.network.model import EndpointRequest, NetworkRequest
from nsbox.runtime.errors import Conflict, InvalidArgument

from nsnet_helpers import BUSYBOX, free_subnet, retry


def test_netns_create_remove(env):
    path = netns.create_netns(env.paths, "nsfile-" + env.tag)
    try:
        r = subprocess.run(["nsenter", f"--net={path}", "ip", "-br", "link"], capture_output=True, text=True)
        assert r.returncode == 0 and "lo" in r.stdout and "UNKNOWN" in r.stdout  # lo up
        with pytest.raises(Conflict):
            netns.create_netns(env.paths, "nsfile-" + env.tag)
    finally:
        netns.remove_netns(env.paths, "nsfile-" + env.tag)
    netns.remove_netns(env.paths, "nsfile-" + env.tag)  # idempotent
    assert not os.path.exists(path)


def test_default_bridge_connectivity(env):
    a = env.container("a")
    b = env.container("b")
    cfg = config.get_network(env.paths, "bridge")
    assert cfg.bridge == env.bridge and cfg.subnet == env.subnet
    assert a.ip != b.ip and a.status.Gateway == cfg.gateway
    assert a.status.MacAddress == "02:42:" + ":".join(f"{int(x):02x}" for x in a.ip.split("."))
    with open(f"/sys/class/net/{env.bridge}/address") as f:
        mac_before = f.read().strip()
    # host <-> netns, netns <-> netns, netns -> gateway
    assert subprocess.run([BUSYBOX, "ping", "-c1", "-W1", a.ip], capture_output=True).returncode == 0
    assert a.ping(b.ip) and b.ping(a.ip) and a.ping(cfg.gateway)
    with open(f"/sys/class/net/{env.bridge}/address") as f:
        assert f.read().strip() == mac_before  # fixed MAC: no drift when ports come and go
    with open(f"/proc/sys/net/ipv4/conf/{env.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    # the default bridge resolves by IP only
    assert hosts.hosts_entries(env.paths, a.cid) == []
    # status is docker-shaped
    ep = a.status.Networks["bridge"]
    assert (ep.IPAddress, ep.IfName, ep.IPPrefixLen) == (a.ip, "eth0", int(env.subnet.split("/")[1]))


def test_user_network_isolated_from_default_bridge(env):
    net = config.create_network(env.paths, f"iso{env.tag}", subnet=free_subnet(env.taken))
    a = env.container("a")
    b = env.container("b", networks=[EndpointRequest(net.name)])
    c = env.container("c", networks=[EndpointRequest(net.name)])
    assert b.ping(c.ip) and b.ping(net.gateway)
    assert not b.ping(a.ip)
    assert not a.ping(b.ip)


def test_internal_network_has_no_route_out(env):
    net = config.create_network(env.paths, f"int{env.tag}", subnet=free_subnet(env.taken), internal=True)
    a = env.container("a", networks=[EndpointRequest(net.name)])
    b = env.container("b", networks=[EndpointRequest(net.name)])
    assert a.ping(b.ip)
    assert "default" not in a.run("ip", "route").stdout
    d = env.container("d")
    assert not d.ping(a.ip)


def test_static_ip_and_conflicts(env):
    net = config.create_network(env.paths, f"st{env.tag}", subnet=free_subnet(env.taken))
    want = str(__import__("ipaddress").IPv4Network(net.subnet).network_address + 77)
    a = env.container("a", networks=[EndpointRequest(net.name, ip=want)])
    assert a.ip == want
    for bad_ip, exc in ((want, Conflict), (net.gateway, InvalidArgument), ("192.0.2.200", InvalidArgument)):
        cid = secrets.token_hex(32)
        path = netns.create_netns(env.paths, cid)
        try:
            with pytest.raises(exc):
                api.attach(env.paths, cid, path, NetworkRequest(networks=[EndpointRequest(net.name, ip=bad_ip)]))
        finally:
            netns.remove_netns(env.paths, cid)
        assert cid not in [r["cid"] for r in ipam.endpoints(env.paths, net.id).values()]
    with pytest.raises(InvalidArgument):  # docker: --ip only on user-defined networks
        api.attach(env.paths, "y" * 64, "/nonexistent", NetworkRequest(networks=[EndpointRequest("bridge", ip=want)]))


def test_names_and_aliases_resolve_and_follow_connect_disconnect(env):
    net = config.create_network(env.paths, f"dns{env.tag}", subnet=free_subnet(env.taken))
    other = config.create_network(env.paths, f"oth{env.tag}", subnet=free_subnet(env.taken))
    a = env.container("alpha", networks=[EndpointRequest(net.name, aliases=["web", "www.local"])])
    b = env.container("beta", networks=[EndpointRequest(net.name)])
    inode = os.stat(a.hosts_file()).st_ino
    assert b.resolve_ping("alpha") and b.resolve_ping("web") and b.resolve_ping("www.local")
    assert b.resolve_ping(a.cid[:12])
    assert a.resolve_ping("beta")  # a's file was rewritten when b joined
    # a container on another network: unknown until connected
    c = env.container("gamma", networks=[EndpointRequest(other.name)])
    assert not c.resolve_ping("alpha")
    assert "gamma" not in open(a.hosts_file()).read()
    ep = api.connect(env.paths, c.cid, c.netns, net.name, aliases=["g"], name="gamma")
    assert ep.IfName == "eth1"
    assert c.resolve_ping("alpha") and a.resolve_ping("g") and b.resolve_ping("gamma")
    api.disconnect(env.paths, c.cid, c.netns, net.name)
    assert "gamma" not in open(a.hosts_file()).read() and "alpha" not in open(c.hosts_file()).read()
    assert "eth1" not in c.run("ip", "-br", "link").stdout
    assert os.stat(a.hosts_file()).st_ino == inode  # rewritten in place (it is bind-mounted)
    assert open(a.hosts_file()).read().startswith("127.0.0.1\tlocalhost\n")
    with pytest.raises(Conflict):
        api.connect(env.paths, b.cid, b.netns, net.name)


def test_detach_is_light_and_idempotent(env):
    a = env.container("a")
    net = config.get_network(env.paths, "bridge")
    api.detach(env.paths, a.cid, a.status)
    api.detach(env.paths, a.cid, a.status)
    api.detach(env.paths, a.cid)
    assert ipam.endpoints(env.paths, net.id) == {}
    host_if = a.status.Networks["bridge"].HostIfName
    assert os.path.exists(f"/sys/class/net/{host_if}")
    netns.remove_netns(env.paths, a.cid)
    # the veth dies with the netns (the kernel frees a netns asynchronously: bounded wait)
    assert retry(lambda: not os.path.exists(f"/sys/class/net/{host_if}"), tries=100)


def test_core_adapters_setup_and_teardown(env):
    """setup_container/teardown as the core calls them, with a docker-shaped container config."""
    from nsbox.network import container
    net = config.create_network(env.paths, f"ad{env.tag}", subnet=free_subnet(env.taken))
    cid = secrets.token_hex(32)
    env.cids.append(cid)
    os.makedirs(env.paths.container_dir(cid))
    cfg = {"Name": "/svc", "Config": {"Hostname": "svc", "ExposedPorts": {"443/tcp": {}}},
           "HostConfig": {"NetworkMode": net.name, "PortBindings": container.port_bindings(["127.0.0.1::80"]),
                          "PublishAllPorts": True},
           "NetworkingConfig": {"EndpointsConfig": {net.name: {"Aliases": ["api"]}}}}
    path, st = container.setup_container(env.paths, cid, cfg)
    assert path == netns.netns_path(env.paths, cid) and os.path.exists(path)
    assert st["Networks"][net.name]["Aliases"] == ["api"] and st["Networks"][net.name]["DNSNames"][:2] == ["svc", "api"]
    assert st["Ports"]["80/tcp"][0]["HostIp"] == "127.0.0.1" and st["Ports"]["443/tcp"][0]["HostPort"]
    container.teardown(env.paths, cid, st)
    container.teardown(env.paths, cid, st)  # idempotent
    assert not os.path.exists(path) and ipam.endpoints(env.paths, net.id) == {}
    # a failing setup leaves no netns file behind
    bad = {**cfg, "HostConfig": {"NetworkMode": "nonexistent"}}
    with pytest.raises(Exception):
        container.setup_container(env.paths, cid, bad)
    assert not os.path.exists(path)


@pytest.mark.parametrize("mode,want", [("", ("bridge", "bridge")), ("none", ("none", "")), ("host", ("host", "")),
                                       ("container:abc", ("container", "abc")), ("mynet", ("bridge", "mynet"))])
def test_network_mode(mode, want):
    assert config.network_mode(mode) == want
