"""Hostile layer tars: nothing may ever be written outside the destination."""
import io
import os
import stat
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nsbox.image import tarsafe
from nsbox.runtime.errors import InvalidArgument

from .conftest import make_tar


@pytest.fixture
def box(tmp_path):
    """dest dir inside a sandbox whose other contents must stay untouched."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("safe")
    dest = tmp_path / "dest"
    dest.mkdir()
    return tmp_path, dest


def snapshot(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st_ = os.lstat(p)
            out[p] = (st_.st_mode, st_.st_size, os.readlink(p) if stat.S_ISLNK(st_.st_mode) else None)
    return out


def extract(data: bytes, dest, mode="layer"):
    return tarsafe.extract(io.BytesIO(data), str(dest), mode=mode)


@pytest.mark.parametrize("entries,why", [
    ([("../evil", "file", "x")], "'..'"),
    ([("a/../../evil", "file", "x")], "'..'"),
    ([("/etc/evil", "file", "x")], "absolute"),
    ([("lnk", "sym", "../outside"), ("lnk/victim", "file", "pwned")], "symlink"),
    ([("lnk", "sym", "/"), ("lnk/tmp/evil", "file", "pwned")], "symlink"),
    ([("hl", "link", "../outside/victim")], "'..'"),
    ([("hl", "link", "/etc/passwd")], "absolute"),
    ([("hl", "link", "nonexistent")], "not in this layer"),
    ([("lnk", "sym", "../outside"), ("hl", "link", "lnk/victim")], "symlink"),
])
def test_hostile_refused(box, entries, why):
    root, dest = box
    before = snapshot(root / "outside")
    with pytest.raises(InvalidArgument) as ei:
        extract(make_tar(entries), dest)
    assert why in str(ei.value)
    assert "\n" not in str(ei.value)
    assert snapshot(root / "outside") == before
    assert (root / "outside" / "victim").read_text() == "safe"


def test_symlink_to_outside_is_kept_but_never_followed(box):
    root, dest = box
    extract(make_tar([("abs", "sym", "/etc/passwd"), ("rel", "sym", "../../outside/victim")]), dest)
    assert os.readlink(dest / "abs") == "/etc/passwd"
    # a later member replacing the link replaces the link itself, not its target
    extract(make_tar([("rel", "file", "new")]), dest)
    assert (dest / "rel").read_text() == "new" and not (dest / "rel").is_symlink()
    assert (root / "outside" / "victim").read_text() == "safe"


def test_devices_skipped_whiteout_kept(box):
    _, dest = box
    res = extract(make_tar([("dev", "dir"), ("dev/sda", "blk", (8, 0)), ("dev/null", "chr", (1, 3)),
                            ("wh", "chr", (0, 0)), ("p", "fifo")]), dest)
    assert res.skipped_devices == ["dev/sda", "dev/null"]
    assert not (dest / "dev" / "sda").exists() and not (dest / "dev" / "null").exists()
    st_ = os.lstat(dest / "wh")
    assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0
    assert stat.S_ISFIFO(os.lstat(dest / "p").st_mode)


def test_absurd_size_refused(box):
    _, dest = box
    with pytest.raises(InvalidArgument, match="limit"):
        tarsafe.extract(io.BytesIO(make_tar([("big", "file", b"x" * 100)])), str(dest),
                        limits=tarsafe.Limits(max_member=10))


def test_truncated_and_garbage(box):
    _, dest = box
    data = make_tar([("f", "file", b"y" * 5000)])
    with pytest.raises(InvalidArgument):
        extract(data[:1024], dest)
    with pytest.raises(InvalidArgument):
        extract(b"not a tar at all" * 100, dest)


def test_trusted_xattrs_ignored(box):
    _, dest = box
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("d")
        ti.type = tarfile.DIRTYPE
        ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.ok": "1"}
        tar.addfile(ti)
    extract(buf.getvalue(), dest)
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "d")


def test_metadata(box):
    _, dest = box
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("s")
        ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = 1, 0o4755, 1000, 1001, 1234567890
        tar.addfile(ti, io.BytesIO(b"x"))
        ti = tarfile.TarInfo("d")
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777, 1111111111
        tar.addfile(ti)
        ti = tarfile.TarInfo("d/f")
        tar.addfile(ti, io.BytesIO(b""))
        ti = tarfile.TarInfo("h")
        ti.type, ti.linkname = tarfile.LNKTYPE, "s"
        tar.addfile(ti)
    extract(buf.getvalue(), dest)
    s = os.lstat(dest / "s")
    assert (stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, int(s.st_mtime)) == (0o4755, 1000, 1001, 1234567890)
    d = os.lstat(dest / "d")
    assert stat.S_IMODE(d.st_mode) == 0o1777 and int(d.st_mtime) == 1111111111
    assert os.lstat(dest / "h").st_ino == s.st_ino


def test_apply_mode_whiteouts(box):
    _, dest = box
    extract(make_tar([("a", "dir"), ("a/old", "file", "1"), ("b", "file", "2"), ("c", "file", "3")]), dest, "apply")
    extract(make_tar([("a", "dir"), ("a/.wh..wh..opq", "file"), ("a/new", "file", "n"), (".wh.b", "file")]),
            dest, "apply")
    assert sorted(os.listdir(dest)) == ["a", "c"]
    assert os.listdir(dest / "a") == ["new"]


def test_layer_mode_whiteouts(box):
    _, dest = box
    extract(make_tar([("a", "dir"), ("a/.wh..wh..opq", "file"), (".wh.b", "file"), ("a/.wh..wh.plnk", "file")]), dest)
    assert os.getxattr(dest / "a", "trusted.overlay.opaque") == b"y"
    st_ = os.lstat(dest / "b")
    assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0
    assert os.listdir(dest / "a") == []


# ---- fuzz: random trees of nasty names/links never escape
names = st.sampled_from(["a", "b", "a/b", "a/b/c", "..", "../x", "/abs", "a/../..", "./a", "a//b", ".wh.a",
                         "a/.wh..wh..opq", ".wh..wh..opq", "lnk", "lnk/x", "a/lnk/y", "c", "", "."])
targets = st.sampled_from(["/", "..", "../outside", "../../outside/victim", "a", "/etc/passwd", "lnk", "a/b", "x"])
kinds = st.sampled_from(["file", "dir", "sym", "link", "chr", "blk", "fifo"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(names, kinds, targets), max_size=12), st.sampled_from(["layer", "apply"]))
def test_fuzz_never_escapes(tmp_path_factory, entries, mode):
    root = tmp_path_factory.mktemp("fz")
    (root / "outside").mkdir()
    (root / "outside" / "victim").write_text("safe")
    dest = root / "dest"
    dest.mkdir()
    before = snapshot(root / "outside")
    tar_entries = []
    for name, kind, target in entries:
        if not name:
            continue
        payload = {"file": "data", "dir": None, "sym": target, "link": target, "chr": (1, 3),
                   "blk": (8, 0), "fifo": None}[kind]
        tar_entries.append((name, kind, payload))
    try:
        extract(make_tar(tar_entries), dest, mode)
    except InvalidArgument:
        pass
    assert snapshot(root / "outside") == before
    assert (root / "outside" / "victim").read_text() == "safe"
    assert sorted(os.listdir(root)) == ["dest", "outside"]
