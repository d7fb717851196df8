"""--userns auto in real containers: container root is an unprivileged host uid, and the whole
lifecycle (exec, logs, cp, commit, limits, bridge networking, pods) works inside the namespace."""
from __future__ import annotations

import json
import os
import pwd

import pytest

from nsbox_testlib import wait_for

NONE = ("--network", "none")
AUTO = ("--userns", "auto")


@pytest.fixture(autouse=True)
def _subids():
    try:
        pwd.getpwnam("nsbox")
    except KeyError:
        pytest.fail("user nsbox is missing: run vagrant/provision.sh (it adds the user and its subordinate ids)")


def uid_map(text: str) -> tuple[int, int, int]:
    c, h, n = text.split()[:3]
    return int(c), int(h), int(n)


def maps_of(nsbox, ref) -> tuple[int, int, int]:
    return uid_map(nsbox.ok("exec", ref, "cat", "/proc/self/uid_map"))


def allocations(nsbox) -> dict:
    try:
        with open(os.path.join(nsbox.root, "userns", "allocations.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


@pytest.mark.vm
def test_container_root_is_an_unprivileged_host_uid(nsbox, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    secret = shared / "secret"
    secret.write_text("host-only\n")
    os.chmod(secret, 0o600)                      # root-only on the host
    r = nsbox("run", "--rm", *NONE, *AUTO, "-v", f"{shared}:/b", "busybox", "sh", "-c",
              "id -u; cat /proc/self/uid_map; echo made > /b/made; cat /b/secret; echo cat=$?")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0"                                    # root inside
    c, host, size = uid_map(lines[1])
    assert c == 0 and host >= 65536 and size == 65536         # ... a high, unprivileged uid outside
    assert "host-only" not in r.stdout and "cat=1" in r.stdout
    assert "Permission denied" in r.stderr
    st = os.stat(shared / "made")
    assert (st.st_uid, st.st_gid) == (host, host)             # the mapped host uid owns what it made


@pytest.mark.vm
def test_ranges_do_not_overlap_are_released_and_reused(nsbox):
    a = nsbox.ok("run", "-d", *NONE, *AUTO, "--name", "ua", "busybox", "sleep", "600").strip()
    nsbox.ok("run", "-d", *NONE, *AUTO, "--name", "ub", "busybox", "sleep", "600")
    _, ha, na = maps_of(nsbox, "ua")
    _, hb, nb = maps_of(nsbox, "ub")
    assert ha + na <= hb or hb + nb <= ha
    info = nsbox.inspect("ua")["HostConfig"]
    assert info["UsernsMode"] == "auto" and info["IDMappings"]["UidMap"] == [f"0:{ha}:{na}"]
    # the processes really run as those host uids
    pid = nsbox.inspect("ua")["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(ha)}
    assert a in allocations(nsbox)
    nsbox.ok("rm", "-f", "ua")
    assert a not in allocations(nsbox)
    nsbox.ok("run", "-d", *NONE, *AUTO, "--name", "uc", "busybox", "sleep", "600")
    assert ha < hb                               # first fit: ua took the lowest range of an empty pool
    assert maps_of(nsbox, "uc")[1] == ha         # ... and uc gets it back once ua is gone


@pytest.mark.vm
def test_exec_logs_and_size(nsbox):
    nsbox.ok("run", "-d", *NONE, "--userns", "auto:size=2000", "--name", "u", "busybox", "sh", "-c",
             "echo from-pid1; exec sleep 600")
    assert nsbox.ok("exec", "u", "id").startswith("uid=0(root) gid=0(root)")
    assert maps_of(nsbox, "u")[2] == 2000
    # exec joins the container's user namespace, not just its others
    pid = nsbox.inspect("u")["State"]["Pid"]
    assert nsbox.ok("exec", "u", "readlink", "/proc/self/ns/user").strip() == os.readlink(f"/proc/{pid}/ns/user")
    assert wait_for(lambda: "from-pid1" in nsbox.ok("logs", "u"))


@pytest.mark.vm
def test_cp_in_and_out_ownership(nsbox, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("into\n")
    nsbox.ok("run", "-d", *NONE, *AUTO, "--name", "u", "busybox", "sh", "-c",
             "echo out > /tmp/out.txt; chown 1000:1000 /tmp/out.txt; exec sleep 600")
    assert wait_for(lambda: nsbox("exec", "u", "test", "-f", "/tmp/out.txt").returncode == 0)
    nsbox.ok("cp", str(src), "u:/tmp/")
    assert nsbox.ok("exec", "u", "stat", "-c", "%u:%g %n", "/tmp/in.txt").split()[0] == "0:0"
    nsbox.ok("exec", "u", "sh", "-c", "echo more >> /tmp/in.txt")    # container root owns it: writable
    nsbox.ok("stop", "-t", "0", "u")
    nsbox.ok("cp", str(src), "u:/tmp/stopped.txt")                  # a stopped container: same view
    nsbox.ok("cp", "u:/tmp/out.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "out\n"
    assert os.stat(tmp_path / "out.txt").st_uid == os.getuid()      # out: the caller's, as docker cp
    owned = tmp_path / "owned.txt"
    owned.write_text("kept\n")
    os.chown(owned, 1000, 1000)
    os.chmod(owned, 0o600)
    nsbox.ok("cp", "-a", str(owned), "u:/tmp/archived-stopped.txt")   # -a: the ids stay, as container ids
    nsbox.ok("start", "u")
    assert nsbox.ok("exec", "u", "stat", "-c", "%u:%g", "/tmp/stopped.txt").strip() == "0:0"
    nsbox.ok("cp", "-a", str(owned), "u:/tmp/archived.txt")
    for name in ("archived.txt", "archived-stopped.txt"):
        assert nsbox.ok("exec", "u", "stat", "-c", "%u:%g", f"/tmp/{name}").strip() == "1000:1000"


def test_volume_copy_up_stores_container_ids(nsbox):
    """A fresh named volume takes the image's files with their container ids, seen through the
    idmapped rootfs as host ids: stored unshifted, they show as root's again in the container."""
    r = nsbox.ok("run", "--rm", *NONE, *AUTO, "-v", "unscopy:/etc", "busybox", "stat", "-c", "%u:%g", "/etc/passwd")
    assert r.strip() == "0:0"
    vol = json.loads(nsbox.ok("volume", "inspect", "unscopy"))[0]["Mountpoint"]
    st = os.stat(os.path.join(vol, "passwd"))
    assert (st.st_uid, st.st_gid) == (0, 0)
    nsbox.ok("volume", "rm", "unscopy")


@pytest.mark.vm
def test_named_volume_and_commit_keep_container_ids(nsbox):
    nsbox.ok("run", *NONE, *AUTO, "--name", "u", "-v", "unsvol:/data", "busybox", "sh", "-c",
             "echo v > /data/f && mkdir /home/x && chown 1000:1000 /home/x && echo c > /etc/committed")
    vol = json.loads(nsbox.ok("volume", "inspect", "unsvol"))[0]["Mountpoint"]
    assert os.stat(os.path.join(vol, "f")).st_uid == 0      # stored unshifted: usable by any container
    nsbox.ok("commit", "u", "unsimg")
    r = nsbox.ok("run", "--rm", *NONE, "unsimg", "sh", "-c", "cat /etc/committed; stat -c %u /home/x")
    assert r.split() == ["c", "1000"]                        # the layer holds container ids, not host ones
    assert nsbox.ok("run", "--rm", *NONE, *AUTO, "-v", "unsvol:/data", "busybox", "cat", "/data/f") == "v\n"
    nsbox.ok("rm", "u")
    nsbox.ok("rmi", "unsimg")
    nsbox.ok("volume", "rm", "unsvol")


@pytest.mark.vm
def test_limits_bite_inside_the_user_namespace(nsbox):
    r = nsbox("run", "--rm", *NONE, *AUTO, "--pids-limit", "5", "busybox", "sh", "-c",
              "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo spawned")
    assert "can't fork" in r.stderr
    r = nsbox("run", *NONE, *AUTO, "--name", "hog", "-m", "32m", "busybox", "sh", "-c",
              'x=$(head -c 64m /dev/zero | tr "\\0" a); echo "hog: ${#x}"')
    assert r.returncode == 137 and "hog:" not in r.stdout
    assert nsbox.inspect("hog")["State"]["OOMKilled"] is True


@pytest.mark.vm
def test_bridge_networking_between_two_containers(nsbox):
    # port 80 without CAP_NET_BIND_SERVICE over the (host-owned) netns: ip_unprivileged_port_start
    nsbox.ok("run", "-d", *AUTO, "--name", "web", "busybox", "sh", "-c",
             "mkdir /www && echo hello-userns > /www/index.html && exec httpd -f -p 80 -h /www")
    ip = nsbox.inspect("web")["NetworkSettings"]["IPAddress"]
    assert ip
    def fetch():
        r = nsbox("run", "--rm", *AUTO, "busybox", "wget", "-qO-", f"http://{ip}/index.html")
        return r.stdout if r.returncode == 0 else ""
    assert wait_for(fetch, timeout=30, step=0.3) == "hello-userns\n"


@pytest.mark.vm
def test_pod_with_userns_auto(nsbox):
    nsbox.ok("pod", "create", "--name", "up", "--userns", "auto")
    nsbox.ok("run", "-d", "--pod", "up", *AUTO, "--name", "pw", "busybox", "sh", "-c",
             "mkdir /www && echo in-pod > /www/i && exec httpd -f -p 80 -h /www")
    def fetch():
        r = nsbox("run", "--rm", "--pod", "up", *AUTO, "busybox", "sh", "-c",
                  "wget -qO- http://127.0.0.1/i && cat /proc/self/uid_map")
        return r.stdout if r.returncode == 0 else ""
    out = wait_for(fetch, timeout=30, step=0.3)
    assert out.startswith("in-pod\n")
    member = uid_map(out.splitlines()[1])
    assert member[1] != maps_of(nsbox, "pw")[1]               # each member its own range
    infra = json.loads(nsbox.ok("pod", "inspect", "up"))[0]
    infra_id = infra.get("InfraContainerID") or infra.get("InfraContainerId")
    assert nsbox.inspect(infra_id)["HostConfig"]["UsernsMode"] == "auto"
    nsbox.ok("pod", "rm", "-f", "up")
    assert allocations(nsbox) == {}


@pytest.mark.vm
def test_root_wide_default(nsbox):
    env = {"NSBOX_USERNS": "auto"}
    r = nsbox("run", "--rm", *NONE, "busybox", "cat", "/proc/self/uid_map", env=env)
    assert uid_map(r.stdout)[1] != 0, r.stderr
    assert "Default User Namespace: auto (NSBOX_USERNS)" in nsbox.ok("info", env=env)
    assert uid_map(nsbox.ok("run", "--rm", *NONE, "--userns", "host", "busybox", "cat", "/proc/self/uid_map",
                            env=env))[1] == 0
    r = nsbox("run", "--rm", *NONE, "busybox", "true", env={"NSBOX_USERNS": "sideways"})
    assert r.returncode == 125 and r.stderr.strip().startswith("Error: NSBOX_USERNS: invalid --userns")


@pytest.mark.parametrize("flags", [
    ("--userns", "auto:size=0"), ("--userns", "keep-id"), ("--userns", "auto:size=" + "9" * 4000),
    ("--uidmap", "0:100000"), ("--uidmap", "1:100000:10"), ("--uidmap", "0:100000:10", "--uidmap", "5:5:1"),
    ("--userns", "auto", "--privileged"), ("--userns", "auto", "--uidmap", "0:1:1"),
])
def test_bad_values_are_one_line_125_and_leave_nothing(nsbox, flags):
    r = nsbox("run", "--rm", *NONE, *flags, "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and len(r.stderr) < 300, r.stderr
    assert nsbox.ok("ps", "-aq") == ""
    assert allocations(nsbox) == {}


@pytest.mark.vm
def test_chowned_copy_where_mounts_cannot_be_idmapped(nsbox):
    env = {"NSBOX_USERNS_IDMAP": "0"}          # as on a filesystem without idmapped mounts
    r = nsbox("run", *NONE, *AUTO, "--name", "fb", "-v", "fbvol:/data", "busybox", "sh", "-c",
              "stat -c %u:%g / /bin/busybox /data; echo x > /etc/new && echo y > /data/y && cat /proc/self/uid_map",
              env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["0:0"] * 3
    host = uid_map(lines[3])[1]
    info = nsbox.inspect("fb")
    copy = os.path.join(os.path.dirname(info["LogPath"]), "rootfs")
    assert os.stat(os.path.join(copy, "bin", "busybox")).st_uid == host     # its own copy, shifted
    r = nsbox("run", "--rm", *NONE, *AUTO, "-v", "/tmp:/t:idmap", "busybox", "true", env=env)
    assert r.returncode == 125 and "idmap" in r.stderr
    nsbox.ok("rm", "fb")
    assert not os.path.exists(copy)
    nsbox.ok("volume", "rm", "fbvol")


@pytest.mark.vm
def test_idmap_bind_shows_host_root_files_as_container_root(nsbox, tmp_path):
    d = tmp_path / "idm"
    d.mkdir()
    (d / "f").write_text("hi\n")
    r = nsbox("run", "--rm", *NONE, *AUTO, "-v", f"{d}:/i:idmap", "busybox", "sh", "-c",
              "stat -c %u /i/f; echo new > /i/n")
    assert r.returncode == 0 and r.stdout == "0\n", r.stderr
    assert os.stat(d / "n").st_uid == 0          # written through the shift: the host sees its root
    r = nsbox("run", "--rm", *NONE, "-v", f"{d}:/i:idmap", "busybox", "true")
    assert r.returncode == 125 and "user namespace" in r.stderr
