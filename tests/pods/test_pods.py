"""Pods with real namespaces: an infra (pause) container holds ipc/net/uts (and pid with --share pid);
members setns() into them; the pod's cgroup parent carries its limits."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request

import pytest

from nsbox_testlib import wait_for


def pod_inspect(nsbox, ref) -> dict:
    return json.loads(nsbox.ok("pod", "inspect", ref))[0]


def pid_of(nsbox, ref) -> int:
    return nsbox.inspect(ref)["State"]["Pid"]


def ns_id(pid: int, t: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{t}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_cgroup(path: str):
    from nsbox.runtime.cgroups import get_driver
    return get_driver().open(path)


@pytest.mark.vm
def test_pod_lifecycle(nsbox, paths):
    pid = nsbox.ok("pod", "create", "--name", "lc", "--label", "team=a").strip()
    assert len(pid) == 64
    assert nsbox.ok("pod", "ps", "-q").split() == [pid[:12]]
    info = pod_inspect(nsbox, "lc")
    assert info["Id"] == pid and info["Name"] == "lc" and info["State"] == "Created"
    assert info["Hostname"] == "lc" and info["Labels"] == {"team": "a"}
    assert sorted(info["SharedNamespaces"]) == ["ipc", "net", "uts"]
    assert info["NumContainers"] == 1 and info["Containers"][0]["Id"] == info["InfraContainerID"]
    infra = info["InfraContainerID"]
    # the infra is an ordinary container: ps -a shows it, with the pod column
    out = nsbox.ok("ps", "-a", "--pod", "--format", "{{.Names}} {{.Pod}} {{.PodName}}")
    assert f"{pid[:12]}-infra {pid[:12]} lc" in out.splitlines()

    # run --pod starts the infra first
    m = nsbox.ok("run", "-d", "--pod", "lc", "--name", "lc-a", "busybox", "sleep", "300").strip()
    assert nsbox.inspect(infra)["State"]["Status"] == "running"
    assert nsbox.inspect(m)["Pod"] == pid
    info = pod_inspect(nsbox, pid[:8])
    assert info["State"] == "Running" and info["NumContainers"] == 2
    assert {c["Name"] for c in info["Containers"]} == {"lc-a", f"{pid[:12]}-infra"}
    fmt = nsbox.ok("pod", "ls", "--format", "{{.Name}} {{.Status}} {{.NumberOfContainers}}").strip()
    assert fmt == "lc Running 2"

    nsbox.ok("pod", "pause", "lc")
    assert pod_inspect(nsbox, "lc")["State"] == "Paused"
    nsbox.ok("pod", "unpause", "lc")
    assert pod_inspect(nsbox, "lc")["State"] == "Running"
    top = nsbox.ok("pod", "top", "lc")
    assert "sleep 300" in top and "lc-a" in top

    nsbox.ok("pod", "stop", "-t", "1", "lc")
    info = pod_inspect(nsbox, "lc")
    assert info["State"] == "Exited"
    assert all(c["State"] == "exited" for c in info["Containers"])
    nsbox.ok("pod", "start", "lc")
    assert pod_inspect(nsbox, "lc")["State"] == "Running"
    nsbox.ok("pod", "restart", "-t", "1", "lc")
    assert pod_inspect(nsbox, "lc")["State"] == "Running"
    nsbox.ok("pod", "kill", "lc")
    wait_for(lambda: pod_inspect(nsbox, "lc")["State"] == "Exited")
    assert pod_inspect(nsbox, "lc")["State"] == "Exited"

    r = nsbox("pod", "create", "--name", "lc")
    assert r.returncode == 125 and "already exists" in r.stderr
    # a stopped pod goes with prune
    assert nsbox.ok("pod", "prune").split() == [pid]
    assert nsbox.ok("pod", "ps", "-q").split() == []
    assert nsbox.ok("ps", "-aq").split() == []
    r = nsbox("pod", "inspect", "lc")
    assert r.returncode == 125 and "no such pod" in r.stderr


@pytest.mark.vm
def test_shared_namespaces(nsbox):
    nsbox.ok("pod", "create", "--name", "sh", "--hostname", "podhost")
    nsbox.ok("run", "-d", "--pod", "sh", "--name", "sh-web", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
    nsbox.ok("run", "-d", "--pod", "sh", "--name", "sh-cli", "busybox", "sleep", "300")
    infra = pod_inspect(nsbox, "sh")["InfraContainerID"]
    # net: members reach each other on localhost
    body = wait_for(lambda: nsbox("exec", "sh-cli", "timeout", "5", "wget", "-qO-",
                                  "http://localhost:8080/hostname").stdout)
    assert body.strip() == "podhost"
    # uts
    assert nsbox.ok("exec", "sh-web", "hostname").strip() == "podhost"
    assert nsbox.ok("exec", "sh-cli", "hostname").strip() == "podhost"
    assert "podhost" in nsbox.ok("exec", "sh-cli", "cat", "/etc/hosts")
    # ipc: a POSIX message queue made by one is seen by the other, and so is /dev/shm
    nsbox.ok("exec", "sh-web", "sh", "-c", "touch /dev/mqueue/podq && echo shared > /dev/shm/seg")
    assert "podq" in nsbox.ok("exec", "sh-cli", "ls", "/dev/mqueue").split()
    assert nsbox.ok("exec", "sh-cli", "cat", "/dev/shm/seg").strip() == "shared"
    # the kernel's view: one ipc/net/uts namespace, separate mnt and pid
    pids = [pid_of(nsbox, r) for r in (infra, "sh-web", "sh-cli")]
    for t in ("ipc", "net", "uts"):
        assert len({ns_id(p, t) for p in pids}) == 1, t
    for t in ("mnt", "pid"):
        assert len({ns_id(p, t) for p in pids}) == 3, t
    # without --share pid each member sees only itself
    ps = nsbox.ok("exec", "sh-cli", "ps")
    assert "httpd" not in ps


@pytest.mark.vm
def test_share_pid_and_reaping(nsbox):
    nsbox.ok("pod", "create", "--name", "pp", "--share", "ipc,net,uts,pid")
    assert sorted(pod_inspect(nsbox, "pp")["SharedNamespaces"]) == ["ipc", "net", "pid", "uts"]
    # the subshell exits at once, so its `sleep 1` is orphaned to the pod's PID 1: the infra
    nsbox.ok("run", "-d", "--pod", "pp", "--name", "pp-a", "busybox", "sh", "-c", "(sleep 1 &); exec sleep 300")
    nsbox.ok("run", "-d", "--pod", "pp", "--name", "pp-b", "busybox", "sleep", "301")
    infra = pod_inspect(nsbox, "pp")["InfraContainerID"]
    pids = [pid_of(nsbox, r) for r in (infra, "pp-a", "pp-b")]
    assert len({ns_id(p, "pid") for p in pids}) == 1
    assert len({ns_id(p, "mnt") for p in pids}) == 3
    ps = nsbox.ok("exec", "pp-b", "ps", "-o", "pid,stat,comm,args")
    assert "sleep 300" in ps and "sleep 301" in ps
    first = ps.splitlines()[1].split()
    assert first[0] == "1"  # the infra is PID 1 of the shared namespace

    def no_orphan_left():
        out = nsbox.ok("exec", "pp-b", "ps", "-o", "stat,args")
        lines = out.splitlines()[1:]
        return not any(ln.split()[0].startswith("Z") for ln in lines) and \
            not any(ln.split(None, 1)[1].strip() == "sleep 1" for ln in lines)
    assert wait_for(no_orphan_left, timeout=30), nsbox.ok("exec", "pp-b", "ps", "-o", "pid,ppid,stat,args")


def test_publish_on_pod(nsbox):
    port = free_port()
    nsbox.ok("pod", "create", "--name", "pub", "-p", f"127.0.0.1:{port}:80")
    r = nsbox("run", "-d", "--pod", "pub", "-p", "8081:81", "busybox", "true")
    assert r.returncode == 125 and "must be defined when the pod is created" in r.stderr
    nsbox.ok("run", "-d", "--pod", "pub", "--name", "pub-web", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")

    def get():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return ""
    assert wait_for(get).strip() == "pub"
    infra = pod_inspect(nsbox, "pub")["InfraContainerID"]
    assert nsbox.inspect(infra)["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                             "HostPort": str(port)}]}


@pytest.mark.vm
def test_pod_limits_inherited(nsbox, paths):
    pid = nsbox.ok("pod", "create", "--name", "lim", "--cpus", "0.5", "-m", "64m").strip()
    nsbox.ok("run", "-d", "--pod", "lim", "--name", "lim-a", "busybox", "sleep", "300")
    info = pod_inspect(nsbox, "lim")
    parent = info["CgroupParent"]
    from nsbox.runtime.state import ContainerRecord
    cid = nsbox.inspect("lim-a")["Id"]
    member_path = ContainerRecord(paths, cid).config()["Spec"]["linux"]["cgroupsPath"]
    assert member_path == f"{parent}/{cid}" and parent.endswith(f"pod-{pid[:12]}")
    assert pid_of(nsbox, "lim-a") in driver_cgroup(member_path).pids()
    cg = driver_cgroup(parent)
    if cg.version == 1:
        mem = open(os.path.join(cg.ctrl_dirs["memory"], "memory.limit_in_bytes")).read().strip()
        quota = open(os.path.join(cg.ctrl_dirs["cpu"], "cpu.cfs_quota_us")).read().strip()
        period = open(os.path.join(cg.ctrl_dirs["cpu"], "cpu.cfs_period_us")).read().strip()
        cpu = (quota, period)
    else:
        mem = open(os.path.join(cg.dirs()[0], "memory.max")).read().strip()
        cpu = tuple(open(os.path.join(cg.dirs()[0], "cpu.max")).read().split())
    assert int(mem) == 64 * 1024 * 1024
    assert cpu == ("50000", "100000")
    r = nsbox("pod", "rm", "lim")
    assert r.returncode == 125 and "running" in r.stderr
    nsbox.ok("pod", "rm", "-f", "lim")
    assert not cg.exists()


def test_pod_rm_removes_everything(nsbox, paths):
    port = free_port()
    pid = nsbox.ok("pod", "create", "--name", "gone", "-p", f"127.0.0.1:{port}:80").strip()
    nsbox.ok("run", "-d", "--pod", "gone", "--name", "gone-a", "busybox", "sleep", "300")
    nsbox.ok("create", "--pod", "gone", "--name", "gone-b", "busybox", "sleep", "300")
    infra = pod_inspect(nsbox, "gone")["InfraContainerID"]
    netns = nsbox.inspect(infra)["NetworkSettings"]["SandboxKey"]
    assert netns and os.path.exists(netns)
    parent = pod_inspect(nsbox, "gone")["CgroupParent"]
    assert driver_cgroup(parent).exists()
    if shutil.which("nft"):
        assert str(port) in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    shm = os.path.join(paths.runroot, "pods", pid, "shm")
    assert os.path.ismount(shm)
    assert nsbox.ok("pod", "rm", "-f", "gone").strip() == pid
    assert nsbox.ok("ps", "-aq").split() == []
    assert nsbox.ok("pod", "ps", "-q").split() == []
    assert not driver_cgroup(parent).exists()
    assert not os.path.exists(shm) and not os.path.ismount(shm)
    assert not os.path.exists(os.path.join(paths.pods, pid))
    assert not os.path.exists(os.path.join(paths.netns_dir, infra))
    assert not os.path.exists(netns)
    if shutil.which("nft"):
        assert f"dport {port} " not in subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                                      text=True).stdout


@pytest.mark.vm
def test_infra_killed_stops_members(nsbox):
    nsbox.ok("pod", "create", "--name", "k9")
    nsbox.ok("run", "-d", "--pod", "k9", "--name", "k9-a", "busybox", "sleep", "300")
    nsbox.ok("run", "-d", "--pod", "k9", "--name", "k9-b", "busybox", "sleep", "300")
    infra = pod_inspect(nsbox, "k9")["InfraContainerID"]
    os.kill(pid_of(nsbox, infra), signal.SIGKILL)  # the infra's own PID 1, which this test's pod started
    assert wait_for(lambda: pod_inspect(nsbox, "k9")["State"] == "Exited", timeout=40)
    info = pod_inspect(nsbox, "k9")
    states = {c["Name"]: c["State"] for c in info["Containers"]}
    assert states == {"k9-a": "exited", "k9-b": "exited", f"{info['Id'][:12]}-infra": "exited"}
    assert nsbox.inspect(infra)["State"]["ExitCode"] == 137
    r = nsbox("start", "k9-a")
    assert r.returncode != 0 and "infra container of pod k9" in r.stderr and "exited unexpectedly" in r.stderr
    assert "/proc/" not in r.stderr
    nsbox.ok("pod", "start", "k9")
    assert pod_inspect(nsbox, "k9")["State"] == "Running"


@pytest.mark.vm
def test_infra_is_small(nsbox):
    from nsbox.runtime.pods import pause_binary
    nsbox.ok("pod", "create", "--name", "mem")
    info = pod_inspect(nsbox, "mem")
    nsbox.ok("pod", "start", "mem")
    infra = nsbox.inspect(info["InfraContainerID"])
    _, argv = pause_binary()
    assert infra["Path"] == argv[0]
    with open(f"/proc/{infra['State']['Pid']}/status") as f:
        rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
    assert rss <= 1024, f"infra VmRSS {rss} kB"
    # SIGTERM: a pause exits 0
    nsbox.ok("stop", "-t", "5", info["InfraContainerID"])
    assert nsbox.inspect(info["InfraContainerID"])["State"]["ExitCode"] == 0


def test_fallback_pause_binary():
    """The embedded pause (used when catatonit is missing) runs, reaps, and exits 0 on SIGTERM."""
    from nsbox.runtime.pods import PAUSE_ELF_B64
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "pause")
        with open(path, "wb") as f:
            f.write(base64.b64decode(PAUSE_ELF_B64))
        os.chmod(path, 0o755)
        p = subprocess.Popen([path])
        try:
            wait_for(lambda: open(f"/proc/{p.pid}/stat").read().split()[2] == "S", timeout=10)
            with open(f"/proc/{p.pid}/status") as f:
                rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
            assert rss <= 1024
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_member_errors(nsbox):
    r = nsbox("run", "--pod", "nope", "busybox", "true")
    assert r.returncode == 125 and "no such pod" in r.stderr
    nsbox.ok("pod", "create", "--name", "me")
    r = nsbox("run", "--pod", "me", "--network", "none", "busybox", "true")
    assert r.returncode == 125 and "pod" in r.stderr
    r = nsbox("pod", "create", "--share", "ipc,bogus")
    assert r.returncode == 125 and "bogus" in r.stderr


@pytest.mark.vm
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the embedded pause is x86-64")
def test_fallback_pause_as_pod_infra(nsbox, paths):
    """The embedded pause as a real infra: PID 1 of a shared pid namespace, reaping, small, exit 0."""
    from nsbox.image.store import ImageStore
    from nsbox.runtime.pods import PAUSE_ELF_B64, build_pause_image
    build_pause_image(ImageStore(paths), "localhost/fallback-pause:latest", base64.b64decode(PAUSE_ELF_B64),
                      ["/pause"])
    nsbox.ok("pod", "create", "--name", "fb", "--share", "ipc,net,uts,pid",
             "--infra-image", "localhost/fallback-pause:latest")
    nsbox.ok("run", "-d", "--pod", "fb", "--name", "fb-a", "busybox", "sh", "-c", "(sleep 1 &); exec sleep 300")
    infra = pod_inspect(nsbox, "fb")["InfraContainerID"]
    assert nsbox.inspect(infra)["Path"] == "/pause"
    with open(f"/proc/{pid_of(nsbox, infra)}/status") as f:
        assert next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) <= 1024

    def reaped():
        out = nsbox.ok("exec", "fb-a", "ps", "-o", "stat,args").splitlines()[1:]
        return not any(ln.split()[0].startswith("Z") or ln.split(None, 1)[1].strip() == "sleep 1" for ln in out)
    assert wait_for(reaped, timeout=30)
    nsbox.ok("pod", "stop", "-t", "5", "fb")
    assert nsbox.inspect(infra)["State"]["ExitCode"] == 0


def test_inspect_finds_pods(nsbox):
    nsbox.ok("pod", "create", "--name", "insp")
    info = json.loads(nsbox.ok("inspect", "--type", "pod", "insp"))[0]
    assert info["Name"] == "insp" and info["InfraContainerID"]
    assert json.loads(nsbox.ok("inspect", "insp"))[0]["Name"] == "insp"
    nsbox.ok("pod", "rm", "-f", "insp")


def _network_leftovers(paths, cid: str) -> list[str]:
    """cid's network objects still in the kernel or the IPAM / port / endpoint records."""
    from nsbox.network import hostports, ipam, nat
    from nsbox.network.reclaim import links_with_alias_prefix, status_dir, veth_tag
    out = []
    if os.path.exists(os.path.join(paths.netns_dir, cid)):
        out.append("netns")
    if shutil.which("nft") and nat.container_table(paths, cid) in nat.list_tables(nat.prefix(paths)):
        out.append("dnat table")
    out += [f"address on {n[:12]}" for n in ipam.networks_of(paths, cid)]
    if cid in hostports.holders(paths):
        out.append("host port")
    out += [f"veth {dev}" for dev, alias in links_with_alias_prefix(veth_tag(paths)) if alias.endswith(cid)]
    if os.path.exists(os.path.join(status_dir(paths), cid + ".json")):
        out.append("endpoint record")
    return out


def test_pod_rm_after_a_killed_run_pod_leaves_no_network(nsbox, paths):
    """kill -9 of `run --pod` while it starts the infra: its netns, address, host port and DNAT table
    exist before the infra's state records them; `pod rm -f` must still release all of them."""
    from nsbox.network import ipam
    from nsbox.runtime.state import ContainerRecord
    from nsbox_testlib import NSBOX_BIN
    landed = False
    for attempt in range(8):   # bounded: until the kill lands inside that window (state, not time, decides)
        name = f"kp{attempt}"
        nsbox.ok("pod", "create", "--name", name, "-p", f"127.0.0.1:{free_port()}:80")
        infra = pod_inspect(nsbox, name)["InfraContainerID"]
        nsfile = os.path.join(paths.netns_dir, infra)
        # in-process CLI (no preload server): the process we kill is the one setting the network up
        p = subprocess.Popen([NSBOX_BIN, "run", "-d", "--pod", name, "busybox", "sleep", "300"],
                             env={**nsbox.env, "NSBOX_PRELOAD": "0"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # its address is taken after the netns and the host port, before the veth and DNAT table
            wait_for(lambda: ipam.networks_of(paths, infra) or p.poll() is not None, timeout=60, step=0.002)
            p.send_signal(signal.SIGSTOP)   # frozen: what we see now is what the kill leaves
            landed = (os.path.exists(nsfile) and bool(ipam.networks_of(paths, infra))
                      and not ContainerRecord(paths, infra).load_state().NetNS)
        finally:
            p.kill()
            p.wait()
        nsbox.ok("pod", "rm", "-f", name)
        assert _network_leftovers(paths, infra) == [], f"attempt {attempt} (killed before the state: {landed})"
        if landed:
            break
    assert landed, "the kill never landed between the infra's netns and its state record"
