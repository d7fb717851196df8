"""Published ports under concurrency: one container's start-up never takes another's network objects."""
import concurrent.futures
import socket
import subprocess

import pytest

from nsbox_testlib import http_answers, wait_for

N = 30
# every CLI its own process (no preload server): they start truly side by side, as separate users' runs do
SEPARATE = {"NSBOX_PRELOAD": "0"}
WEB = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def _free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now (all bound at once, so the kernel gives n different ones)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tables() -> str:
    return subprocess.run(["nft", "list", "tables", "ip"], capture_output=True, text=True).stdout


@pytest.mark.slow
def test_concurrent_publishers_all_answer_on_their_ports(nsbox, paths):
    from nsbox.network import nat
    ports = _free_ports(N)
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        rs = list(pool.map(lambda ip: nsbox("run", "-d", "--name", f"pub{ip[0]}", "-p", f"127.0.0.1:{ip[1]}:80",
                                            "busybox", "sh", "-c", WEB, timeout=300, ),
                           enumerate(ports)))
    assert all(r.returncode == 0 for r in rs), [r.stderr for r in rs if r.returncode][:3]
    cids = [r.stdout.strip() for r in rs]
    # each server is up (it answers on its own address, inside the netns nsbox made) ...
    ips = [nsbox.inspect(c)["NetworkSettings"]["IPAddress"] for c in cids]
    assert all(wait_for(lambda ip=ip: http_answers(f"http://{ip}/"), timeout=60) for ip in ips)
    # ... so a published port that does not answer has lost its DNAT table (it never comes back)
    tables = _tables()
    missing = [c[:12] for c in cids if nat.container_table(paths, c) not in tables]
    assert not missing, f"DNAT tables removed by another container's start-up: {missing}"
    dead = [p for p in ports if not wait_for(lambda p=p: http_answers(f"http://127.0.0.1:{p}/"), timeout=10)]
    assert not dead, f"published ports that never answered: {dead}"
