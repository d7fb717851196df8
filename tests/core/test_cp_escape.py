"""`cp` never touches a host file: every path in the container resolves inside its root.

The container is full of symlinks that point at a host-only directory H (this test's tmp dir,
which does not exist inside the container) in every position a path can take: the final
name, a directory entry a tree copy lands on, a parent component, a relative link climbing
with `..`, and the entries of a tree copied out with -L. Each cp then must leave H exactly as
it was, read nothing from it, and say nothing about host paths when it refuses.
"""
import os

import pytest

from nsbox_testlib import tree_snapshot, wait_for

# host lane only: path resolution does not depend on the cgroup hierarchy, and 50+ containers
# take minutes under the VM lane's TCG
NONE = ("--network", "none")


def _setup_script(h):
    up = "../" * 12
    return (f"ln -s {h}/victim /tmp/evil; mkdir /d2; ln -s {h} /d2/sub; ln -s {h} /lnk; "
            f"mkdir /dir; ln -s {h}/secret /dir/s; ln -s {h} /dir/hd; ln -s {h}/secret /abs; "
            f"mkdir -p /a/b; ln -s {up}{h.lstrip('/')} /a/b/rel; ln -s /dir /dirlink; touch /ready")


@pytest.fixture
def bait(tmp_path):
    h = tmp_path / "host-only"
    h.mkdir()
    (h / "victim").write_text("original\n")
    (h / "secret").write_text("HOST-SECRET\n")
    (h / "sub").mkdir()
    src = tmp_path / "src"
    (src / "m" / "sub").mkdir(parents=True)
    (src / "m" / "sub" / "f").write_text("x\n")
    (src / "evil").write_text("PWNED\n")
    return h, src, tmp_path


@pytest.fixture(params=["running", "stopped"])
def ctr(request, nsbox, bait):
    h = bait[0]
    if request.param == "running":
        nsbox.ok("run", "-d", *NONE, "--name", "c", "busybox", "sh", "-c", _setup_script(str(h)) + "; sleep 600")
        assert wait_for(lambda: nsbox("exec", "c", "test", "-f", "/ready").returncode == 0)
    else:
        nsbox.ok("run", *NONE, "--name", "c", "busybox", "sh", "-c", _setup_script(str(h)))
        assert nsbox.inspect("c")["State"]["Status"] == "exited"
    return request.param


def _check_refusal(nsbox, r):
    assert r.returncode == 125, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1
    assert nsbox.root not in r.stderr and "/proc/" not in r.stderr and "merged" not in r.stderr


def test_cp_into_replaces_symlinks_and_never_writes_the_host(nsbox, bait, ctr):
    h, src, _ = bait
    before = tree_snapshot(h)
    nsbox.ok("cp", src / "evil", "c:/tmp/")           # the final name is a link to a host file
    nsbox.ok("cp", f"{src}/m/.", "c:/d2")             # a tree entry lands on a link to a host dir
    assert tree_snapshot(h) == before
    # docker's semantics inside the container: the links were replaced by what was copied
    nsbox.ok("cp", "c:/tmp/evil", src / "back-evil")
    assert (src / "back-evil").read_text() == "PWNED\n" and not os.path.islink(src / "back-evil")
    nsbox.ok("cp", "c:/d2/sub/f", src / "back-f")
    assert (src / "back-f").read_text() == "x\n"


@pytest.mark.parametrize("dest", ["c:/lnk/x", "c:/a/b/rel/", "c:/a/b/rel/x", "c:/../../../..{h}/new",
                                  "c:/lnk/sub/new"])
def test_cp_into_through_links_and_dotdot_stays_inside(nsbox, bait, ctr, dest):
    h, src, _ = bait
    before = tree_snapshot(h)
    r = nsbox("cp", src / "evil", dest.format(h=h))
    _check_refusal(nsbox, r)   # each resolves to a path that does not exist in the container
    assert tree_snapshot(h) == before


@pytest.mark.parametrize("args", [["-L", "c:/abs"], ["c:/lnk/secret"], ["-L", "c:/lnk/secret"],
                                  ["c:/a/b/rel/secret"], ["c:/../../..{h}/secret"]])
def test_cp_out_through_links_and_dotdot_reads_nothing_of_the_host(nsbox, bait, ctr, args):
    h, _, tmp = bait
    out = tmp / "out"
    r = nsbox("cp", *[a.format(h=h) for a in args], out)
    _check_refusal(nsbox, r)
    assert not os.path.exists(out)


@pytest.mark.parametrize("follow", [[], ["-L"]])
def test_cp_out_of_a_tree_of_host_links_copies_links_not_host_files(nsbox, bait, ctr, follow):
    h, _, tmp = bait
    nsbox.ok("cp", *follow, "c:/dirlink" if follow else "c:/dir", tmp / "out")
    for dirpath, _, files in os.walk(tmp / "out"):
        for f in files:
            p = os.path.join(dirpath, f)
            assert os.path.islink(p), p      # docker: -L follows SRC_PATH only; links inside stay links
            assert os.readlink(p).startswith(str(h))
    assert sorted(os.listdir(tmp / "out")) == ["hd", "s"]


def test_cp_never_copies_device_nodes_the_container_made(nsbox, tmp_path):
    # container root has CAP_MKNOD: a node it makes would be opened by the host-side copier,
    # with the host's privileges and outside the container's device cgroup
    nsbox.ok("run", *NONE, "--name", "dv", "busybox", "sh", "-c",
             "mkdir /d; mknod /d/null c 1 3; echo ok > /d/f")
    r = nsbox("cp", "dv:/d", tmp_path / "out")
    assert r.returncode == 0 and "not copied: 1 device node(s) or socket(s)" in r.stderr and "out/null" in r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["f"]
