"""Pure parsers: -p/--publish, EXPOSE, subnets (property tests; no root needed)."""
from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsbox.network.model import PortMapping
from nsbox.network.ports import expand_publish_all, parse_exposed, parse_publish
from nsbox.network.subnets import parse_gateway, parse_subnet, pick_free_subnet
from nsbox.runtime.errors import InvalidArgument

ports = st.integers(1, 65535)
protos = st.sampled_from(["tcp", "udp"])
ips = st.one_of(st.just(""), st.ip_addresses(v=4).map(str))


@given(ip=ips, host=st.one_of(st.just(0), ports), cont=ports, proto=protos, explicit=st.booleans())
def test_publish_single_roundtrip(ip, host, cont, proto, explicit):
    spec = f"{cont}"
    if ip:
        spec = f"{ip}:{host or ''}:{cont}"
    elif host:
        spec = f"{host}:{cont}"
    if explicit or proto == "udp":
        spec += f"/{proto}"
    [m] = parse_publish(spec)
    assert m == PortMapping(cont, proto, "" if ip == "0.0.0.0" else ip, host, 0)


@given(start=st.integers(1, 65000), n=st.integers(0, 20), hstart=st.integers(1, 65000), proto=protos)
def test_publish_ranges_pairwise(start, n, hstart, proto):
    ms = parse_publish(f"{hstart}-{hstart + n}:{start}-{start + n}/{proto}")
    assert [(m.host_port, m.container_port) for m in ms] == [(hstart + i, start + i) for i in range(n + 1)]
    assert all(m.protocol == proto and not m.host_port_end for m in ms)


@given(start=st.integers(1, 65000), n=st.integers(1, 20), cont=ports)
def test_publish_host_range_single_container_port(start, n, cont):
    [m] = parse_publish(f"{start}-{start + n}:{cont}")
    assert (m.host_port, m.host_port_end, m.container_port) == (start, start + n, cont)


@given(start=st.integers(1, 65000), n=st.integers(0, 20))
def test_publish_container_range_ephemeral(start, n):
    ms = parse_publish(f"{start}-{start + n}")
    assert [m.container_port for m in ms] == list(range(start, start + n + 1))
    assert all(m.host_port == 0 for m in ms)


@pytest.mark.parametrize("bad", ["", "0", "65536", "80/sctp", "a:80", "1:2:3:4", "8000-8001:80-82", "90-80",
                                 "300.1.1.1:80:80", "[::1]:80:80", "80:", "-1", "1.2.3.4::"])
def test_publish_invalid(bad):
    with pytest.raises(InvalidArgument):
        parse_publish(bad)


@given(st.text(max_size=30))
def test_publish_never_crashes(text):
    try:
        out = parse_publish(text)
    except InvalidArgument:
        return
    assert out and all(1 <= m.container_port <= 65535 for m in out)


def test_exposed_and_publish_all():
    assert parse_exposed("8000-8002/udp") == [(8000, "udp"), (8001, "udp"), (8002, "udp")]
    out = expand_publish_all([PortMapping(80, "tcp", "", 8080)], ["80/tcp", "53/udp", "443"])
    assert out == [PortMapping(80, "tcp", "", 8080), PortMapping(53, "udp"), PortMapping(443, "tcp")]


@given(addr=st.integers(0, 2**32 - 1), prefix=st.integers(8, 30))
def test_subnet_roundtrip(addr, prefix):
    net = ipaddress.IPv4Network((addr, prefix), strict=False)
    assert parse_subnet(str(net)) == net
    gw = parse_gateway(None, net)
    assert gw == net.network_address + 1 and gw in net


@given(addr=st.integers(0, 2**32 - 1), prefix=st.integers(8, 29))
def test_subnet_with_host_bits_rejected(addr, prefix):
    net = ipaddress.IPv4Network((addr, prefix), strict=False)
    with pytest.raises(InvalidArgument):
        parse_subnet(f"{net.network_address + 1}/{prefix}")


@pytest.mark.parametrize("bad", ["10.0.0.0/31", "10.0.0.0", "x/24", "::1/64", "10.0.0.0/33"])
def test_subnet_invalid(bad):
    with pytest.raises(InvalidArgument):
        parse_subnet(bad)


def test_gateway_must_be_usable():
    net = parse_subnet("10.9.0.0/24")
    assert str(parse_gateway("10.9.0.254", net)) == "10.9.0.254"
    for bad in ("10.9.0.0", "10.9.0.255", "10.9.1.1", "nope"):
        with pytest.raises(InvalidArgument):
            parse_gateway(bad, net)


@given(st.lists(st.integers(17, 31), unique=True, max_size=15))
def test_pick_free_subnet_avoids_taken(taken_seconds):
    taken = [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in taken_seconds]
    got = pick_free_subnet(taken)
    assert not any(got.overlaps(t) for t in taken)


def test_network_none_path_imports_no_pyroute2():
    """The parsers and the whole API surface load without pyroute2; only links does."""
    code = ("import sys; import nsbox.network as n; n.parse_publish('80'); n.NetworkRequest; n.attach; n.detach;"
            "n.create_netns; n.hosts_entries; import nsbox.network.container, nsbox.cli.network;"
            "assert 'pyroute2' not in sys.modules, 'pyroute2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
