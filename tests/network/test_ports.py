"""Published ports through nft DNAT: localhost, an outside client netns, hairpin, UDP, conflicts."""
from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from nsbox.network import api, fileio, hostports, ipam, nat, netns
from nsbox.network.model import NetworkRequest, PortMapping
from nsbox.network.ports import parse_publish
from nsbox.runtime.errors import Conflict

from nsnet_helpers import BUSYBOX, free_subnet, retry

UDP_ECHO = ("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',{port}))\n"
            "while True:\n d,a=s.recvfrom(2048)\n s.sendto(b'echo:'+d,a)\n")

UDP_ASK = ("import socket\nc=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nc.settimeout(1)\n"
           "c.sendto(b'ping',('{ip}',{port}))\nprint(c.recv(100).decode())\n")


def host_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read().decode()
    except OSError:
        return None


def host_port(status, key="80/tcp") -> int:
    return int(status.Ports[key][0]["HostPort"])


@pytest.fixture
def outside(env):
    """A netns playing another host: veth to the host, host end gets .1, client .2, default route via .1."""
    from pyroute2 import IPRoute
    net = ipaddress.IPv4Network(free_subnet(env.taken))
    host_ip, client_ip = str(net.network_address + 1), str(net.network_address + 2)
    cid = "client-" + env.tag
    path = netns.create_netns(env.paths, cid)
    link = f"nsxc{env.tag}"
    env.extra_links.append(link)
    fd = os.open(path, os.O_RDONLY)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=link, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
            idx = ipr.link_lookup(ifname=link)[0]
            ipr.addr("add", index=idx, address=host_ip, prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
    finally:
        os.close(fd)
    for cmd in (["ip", "addr", "add", f"{client_ip}/{net.prefixlen}", "dev", "eth0"],
                ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", host_ip]):
        subprocess.run(["nsenter", f"--net={path}", *cmd], check=True)

    class Client:
        address = host_ip  # the "public" host address the client reaches

        def get(self, url: str) -> str | None:
            r = subprocess.run(["nsenter", f"--net={path}", "timeout", "5", BUSYBOX, "wget", "-q", "-O", "-", url],
                               capture_output=True, text=True)
            return r.stdout if r.returncode == 0 else None

        def udp_ask(self, port: int) -> str | None:
            r = subprocess.run(["nsenter", f"--net={path}", sys.executable, "-c", UDP_ASK.format(ip=host_ip, port=port)],
                               capture_output=True, text=True)
            return r.stdout.strip() if r.returncode == 0 else None
    yield Client()
    netns.remove_netns(env.paths, cid)


def test_publish_tcp_everywhere(env, outside):
    a = env.container("a", ports=parse_publish("80"))
    a.serve_http("hello-a")
    port = host_port(a.status)
    assert a.status.NatTable
    b = env.container("b")
    assert retry(lambda: host_get(f"http://127.0.0.1:{port}/")) == "hello-a"           # localhost
    assert retry(lambda: outside.get(f"http://{outside.address}:{port}/")) == "hello-a"  # another host
    gw = a.status.Gateway
    assert retry(lambda: a.http_get(f"http://{gw}:{port}/")) == "hello-a"               # hairpin
    assert retry(lambda: b.http_get(f"http://{gw}:{port}/")) == "hello-a"               # another container
    api.detach(env.paths, a.cid, a.status)
    assert host_get(f"http://127.0.0.1:{port}/") is None
    assert nat.container_table(env.paths, a.cid) not in nat.list_tables(nat.prefix(env.paths))


def test_publish_host_ip_and_range(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    base = s.getsockname()[1]
    s.close()
    a = env.container("a", ports=parse_publish(f"127.0.0.1:{base}-{base + 1}:80-81"))
    assert a.status.Ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(base)}]
    assert a.status.Ports["81/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(base + 1)}]
    a.serve_http("hi", port=81)
    assert retry(lambda: host_get(f"http://127.0.0.1:{base + 1}/")) == "hi"
    b = env.container("b", ports=parse_publish(f"127.0.0.1:{base}-{base + 5}:81"))  # any free port of the range
    got = host_port(b.status, "81/tcp")
    assert base + 2 <= got <= base + 5


def test_publish_udp(env, outside):
    a = env.container("a", ports=parse_publish("5353/udp"))
    env.spawn(a.netns, sys.executable, "-c", UDP_ECHO.format(port=5353))
    port = host_port(a.status, "5353/udp")

    def ask() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(1)
            c.sendto(b"ping", ("127.0.0.1", port))
            try:
                return c.recv(100)
            except OSError:
                return None
    assert retry(ask, tries=30) == b"echo:ping"
    assert retry(lambda: outside.udp_ask(port), tries=10) == "echo:ping"


def test_publish_all_exposed(env):
    a = env.container("a", ports=[PortMapping(80)], publish_all=True, exposed=["80/tcp", "9000/udp", "443"])
    assert set(a.status.Ports) == {"80/tcp", "9000/udp", "443/tcp"}
    assert len({p[0]["HostPort"] for p in a.status.Ports.values()}) == 3


def _nothing_made(env, cid: str) -> None:
    tag = f"nsbox:{fileio.root_tag(env.paths)}:{cid}"
    for dev in os.listdir("/sys/class/net"):
        try:
            assert open(f"/sys/class/net/{dev}/ifalias").read().strip() != tag
        except OSError:
            pass
    assert nat.container_table(env.paths, cid) not in nat.list_tables(nat.prefix(env.paths))
    for cfg_id in ipam.networks_of(env.paths, cid):
        pytest.fail(f"address left on {cfg_id}")
    assert all(r["cid"] != cid for r in fileio.read_json(os.path.join(env.paths.networks, "ports.json"), []))
    assert api.load_status(env.paths, cid) is None


def _attach_fails(env, ports: list[PortMapping]) -> str:
    cid = os.urandom(32).hex()
    path = netns.create_netns(env.paths, cid)
    try:
        with pytest.raises(Conflict) as ei:
            api.attach(env.paths, cid, path, NetworkRequest(ports=ports))
        assert "already" in str(ei.value) and "\n" not in str(ei.value)
        _nothing_made(env, cid)
    finally:
        netns.remove_netns(env.paths, cid)
    return str(ei.value)


def test_port_conflict_with_listener_and_with_container(env):
    env.container("first")  # the bridge exists: a conflict must not depend on first-time setup
    lst = socket.socket()
    lst.bind(("0.0.0.0", 0))
    lst.listen(1)
    try:
        busy = lst.getsockname()[1]
        msg = _attach_fails(env, [PortMapping(80, host_port=busy)])
        assert str(busy) in msg
    finally:
        lst.close()
    a = env.container("a", ports=parse_publish("80"))
    taken = host_port(a.status)
    _attach_fails(env, [PortMapping(81, "tcp", "", 0), PortMapping(80, "tcp", "127.0.0.1", taken)])
    # the same port number over UDP is free
    b = env.container("b", ports=[PortMapping(80, "udp", "", taken)])
    assert host_port(b.status, "80/udp") == taken


def test_port_registry_release(env):
    a = env.container("a", ports=parse_publish("80"))
    port = host_port(a.status)
    api.detach(env.paths, a.cid)
    got = hostports.reserve(env.paths, "z" * 64, [PortMapping(80, host_port=port)])
    assert got[0].host_port == port
    hostports.release(env.paths, "z" * 64)
