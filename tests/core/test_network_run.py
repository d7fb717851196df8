"""Network modes through `nsbox run` (the library is tested in tests/network)."""
import json
import os
import socket
import subprocess
import urllib.request

import pytest

from nsbox_testlib import wait_for


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


WEB = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def test_default_bridge_address_route_and_ping(nsbox):
    a = nsbox.ok("run", "-d", "--name", "a", "busybox", "sleep", "300").strip()
    ip_a = nsbox.inspect(a)["NetworkSettings"]["IPAddress"]
    assert ip_a
    r = nsbox("run", "--rm", "busybox", "sh", "-c", f"ip route | grep default; ping -c1 -W2 {ip_a} >/dev/null && echo pong")
    assert "default via" in r.stdout and "pong" in r.stdout


def test_publish_from_loopback_and_port_verb(nsbox):
    port = free_port()
    cid = nsbox.ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", WEB).strip()
    assert wait_for(lambda: _try(f"http://127.0.0.1:{port}/"))
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello-")
    assert nsbox.ok("port", "web").strip() == f"80/tcp -> 127.0.0.1:{port}"
    assert nsbox.ok("port", "web", "80").strip() == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}->80/tcp" in nsbox.ok("ps")
    nsbox.ok("rm", "-f", cid)
    assert not _try(f"http://127.0.0.1:{port}/")


def _try(url):
    try:
        http_get(url)
        return True
    except OSError:
        return False


def test_port_conflict_is_a_clear_error(nsbox):
    port = free_port()
    nsbox.ok("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "300")
    r = nsbox("run", "-d", "--name", "second", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "300")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert nsbox.inspect("second")["State"]["Status"] != "running"


def test_bad_publish_is_125_and_leaves_nothing(nsbox):
    r = nsbox("run", "--rm", "-p", "notaport", "busybox", "true")
    assert r.returncode == 125
    assert nsbox.ok("ps", "-aq") == ""


def test_host_network(nsbox):
    r = nsbox("run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net")
    assert r.stdout.strip() == os.readlink("/proc/self/ns/net")


def test_none_network_has_only_lo(nsbox):
    r = nsbox("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net; ip -o link show lo")
    assert r.stdout.split()[0] == "lo" and "UP" in r.stdout


def test_container_mode_shares_the_netns(nsbox):
    a = nsbox.ok("run", "-d", "--name", "owner", "busybox", "sleep", "300").strip()
    r = nsbox("run", "--rm", "--network", "container:owner", "busybox", "readlink", "/proc/self/ns/net")
    pid = nsbox.inspect(a)["State"]["Pid"]
    assert r.stdout.strip() == os.readlink(f"/proc/{pid}/ns/net")


def test_user_network_resolves_names_and_aliases(nsbox):
    nsbox.ok("network", "create", "appnet")
    try:
        nsbox.ok("run", "-d", "--name", "db", "--network", "appnet", "--network-alias", "database", "busybox",
                 "sleep", "300")
        r = nsbox("run", "--rm", "--network", "appnet", "busybox", "sh", "-c",
                  "ping -c1 -W2 db >/dev/null && echo by-name; ping -c1 -W2 database >/dev/null && echo by-alias")
        assert r.stdout.split() == ["by-name", "by-alias"], r.stdout + r.stderr
        # the default bridge cannot resolve or reach it
        r = nsbox("run", "--rm", "busybox", "sh", "-c", "ping -c1 -W1 db >/dev/null 2>&1 && echo reached")
        assert "reached" not in r.stdout
    finally:
        nsbox("rm", "-f", "db")
        nsbox("network", "rm", "appnet")


def test_network_survives_restart_and_is_released(nsbox):
    cid = nsbox.ok("run", "-d", "busybox", "sleep", "300").strip()
    ip1 = nsbox.inspect(cid)["NetworkSettings"]["IPAddress"]
    nsbox.ok("restart", "-t", "0", cid)
    assert nsbox.inspect(cid)["NetworkSettings"]["IPAddress"]
    nsbox.ok("stop", "-t", "0", cid)
    assert nsbox.inspect(cid)["NetworkSettings"]["IPAddress"] == ""
    assert ip1


def test_kill_9_of_cli_during_start_leaves_nothing_after_rm(nsbox):
    import signal
    import time
    for delay in (0.05, 0.15, 0.3):
        p = nsbox.popen("run", "-d", "--name", f"k{int(delay*100)}", "-p", "0:80", "busybox", "sleep", "300",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    ids = nsbox.ok("ps", "-aq").split()
    if ids:
        nsbox.ok("rm", "-f", *ids)
    # the suite's leak check verifies that no veth, netns file or nft table of this root remains


@pytest.mark.slow
def test_50_concurrent_containers_on_one_bridge(nsbox):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(25) as pool:
        rs = list(pool.map(lambda i: nsbox("run", "-d", "--name", f"n{i}", "busybox", "sleep", "300", timeout=300),
                           range(50)))
    assert all(r.returncode == 0 for r in rs), [r.stderr for r in rs if r.returncode][:3]
    ips = [nsbox.inspect(f"n{i}")["NetworkSettings"]["IPAddress"] for i in range(50)]
    assert len(set(ips)) == 50 and all(ips)
    script = " ".join(f"ping -c1 -W2 {ip} >/dev/null && echo ok;" for ip in ips)
    r = nsbox("exec", "n0", "sh", "-c", script, timeout=300)
    assert r.stdout.split().count("ok") == 50


def test_network_none_imports_no_netlink_code(nsbox):
    # the in-process CLI (no preload server: its first command, or a declined caller) prints its
    # imports; the monitor runs with -I and ignores -X. (The warm server has pyroute2 loaded already.)
    import sys
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "from nsbox.cli.main import main; main()",
                        "run", "--rm", "--network", "none", "busybox", "true"],
                       env={**nsbox.env, "NSBOX_PRELOAD": "0"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "import time:" in r.stderr and "pyroute2" not in r.stderr
