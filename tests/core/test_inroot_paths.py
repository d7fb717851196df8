"""export, commit, build's COPY --from and volume copy-up never read or write a host file.

Each container or image holds absolute symlinks to a host-only directory H (this test's tmp
dir, absent inside the container) as files, as directories and as mount points; the result
must hold those links as links, nothing of H's content, and H must stay untouched.
"""
import io
import os
import tarfile

import pytest

from nsbox_testlib import tree_snapshot

# host lane only: path resolution does not depend on the cgroup hierarchy, and 50+ containers
# take minutes under the VM lane's TCG
NONE = ("--network", "none")


@pytest.fixture
def host_only(tmp_path):
    h = tmp_path / "host-only"
    (h / "sub").mkdir(parents=True)
    (h / "secret").write_text("HOST-SECRET\n")
    (h / "sub" / "deep").write_text("HOST-SECRET\n")
    return h


def _links(h):
    return (f"mkdir -p /dir/d; ln -s {h}/secret /dir/s; ln -s {h} /dir/hd; ln -s {h}/sub /dir/d/sub; "
            f"ln -s {h} /hd; ln -s {h}/secret /abs")


def _no_secret_in_tar(data: bytes, h) -> dict:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
        for m in members.values():
            if m.isreg():
                assert b"HOST-SECRET" not in t.extractfile(m).read(), m.name
    return members


@pytest.mark.parametrize("running", [True, False])
def test_export_stores_links_never_host_files(nsbox, host_only, running):
    h = host_only
    before = tree_snapshot(h)
    if running:
        nsbox.ok("run", "-d", *NONE, "--name", "e", "busybox", "sh", "-c", _links(h) + "; touch /ready; sleep 600")
        from nsbox_testlib import wait_for
        assert wait_for(lambda: nsbox("exec", "e", "test", "-f", "/ready").returncode == 0)
    else:
        nsbox.ok("run", *NONE, "--name", "e", "busybox", "sh", "-c", _links(h))
    data = _export(nsbox, "e")
    members = _no_secret_in_tar(data, h)
    assert members["dir/s"].issym() and members["dir/s"].linkname == f"{h}/secret"
    assert members["dir/d/sub"].issym() and members["hd"].issym()
    assert not any(n.startswith(("dir/hd/", "hd/", "dir/d/sub/")) for n in members)
    assert tree_snapshot(h) == before


def _export(nsbox, ref) -> bytes:
    import subprocess
    from nsbox_testlib import NSBOX_BIN
    r = subprocess.run([NSBOX_BIN, "export", ref], env=nsbox.env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_commit_stores_links_never_host_files(nsbox, host_only):
    h = host_only
    before = tree_snapshot(h)
    nsbox.ok("run", *NONE, "--name", "cm", "busybox", "sh", "-c", _links(h))
    nsbox.ok("commit", "cm", "linked:v1")
    out = nsbox.ok("run", "--rm", *NONE, "linked:v1", "sh", "-c",
                   "for f in /dir/s /dir/d/sub /hd; do readlink $f; done; cat /dir/s /hd/secret /dir/d/sub/deep 2>/dev/null; true")
    assert out.split() == [f"{h}/secret", f"{h}/sub", str(h)]
    import subprocess
    from nsbox_testlib import NSBOX_BIN
    saved = subprocess.run([NSBOX_BIN, "save", "linked:v1"], env=nsbox.env, capture_output=True, timeout=120)
    assert saved.returncode == 0 and b"HOST-SECRET" not in saved.stdout
    assert tree_snapshot(h) == before


def test_copy_from_a_stage_of_host_links_copies_links(nsbox, host_only, tmp_path):
    h = host_only
    before = tree_snapshot(h)
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text(
        f"FROM busybox AS src\nRUN {_links(h).replace(';', ' &&')}\n"
        "FROM busybox\nCOPY --from=src /dir /copied/\nCOPY --from=src /dir/ /again\n")
    nsbox.ok("build", "-t", "cpfrom", d)
    out = nsbox.ok("run", "--rm", *NONE, "cpfrom", "sh", "-c",
                   "for f in /copied/s /again/hd /again/d/sub; do readlink $f; done; cat /copied/s /again/hd/secret 2>/dev/null; true")
    assert out.split() == [f"{h}/secret", str(h), f"{h}/sub"]
    # a source that is a link to a host path resolves inside the source image: not found there
    for src in ("/abs", "/hd/secret", f"/../../..{h}/secret"):
        (d / "Dockerfile").write_text(f"FROM busybox AS src\nRUN {_links(h).replace(';', ' &&')}\n"
                                      f"FROM busybox\nCOPY --from=src {src} /x\n")
        r = nsbox("build", "-t", "cpfrom-bad", d)
        assert r.returncode != 0 and "HOST-SECRET" not in r.stdout + r.stderr
        assert str(nsbox.root) not in r.stderr
    assert tree_snapshot(h) == before


@pytest.mark.parametrize("mountpoint", ["/data", "/via/data", "/rel/data"])
def test_volume_copy_up_through_a_linked_mount_point_stays_inside(nsbox, host_only, mountpoint):
    h = host_only
    before = tree_snapshot(h)
    up = "../" * 10
    nsbox.ok("run", *NONE, "--name", "img", "busybox", "sh", "-c",
             f"ln -s {h} /data; mkdir /via; ln -s {h} /via/data; mkdir /rel; ln -s {up}{str(h).lstrip('/')} /rel/data")
    nsbox.ok("commit", "img", "linkedmp")
    vol = "vol" + mountpoint.replace("/", "-")
    out = nsbox.ok("run", "--rm", *NONE, "-v", f"{vol}:{mountpoint}", "linkedmp", "sh", "-c",
                   f"ls -A {mountpoint}; cat {mountpoint}/secret 2>/dev/null; touch {mountpoint}/made; true")
    assert "HOST-SECRET" not in out and out.split() == []
    assert tree_snapshot(h) == before
    # the volume was mounted where the link points inside the container, and holds only what it made
    assert nsbox.ok("run", "--rm", *NONE, "-v", f"{vol}:/v", "busybox", "ls", "-A", "/v").split() == ["made"]
    nsbox.ok("volume", "rm", vol)
