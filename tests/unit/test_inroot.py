"""runtime/inroot.py: whatever path is asked for, what it opens lies inside the root.

A real directory tree full of links that try to leave it (absolute links to a directory
outside, relative links climbing with `..`, a link to /proc's magic links, a loop), and any
path hypothesis can spell from those names: every fd `open` and `locate` hand back, and every
file a copy writes, is inside the root, and the outside directory never changes.
"""
import os

import pytest
from hypothesis import given, strategies as st

from nsbox.runtime import inroot
from nsbox_testlib import tree_snapshot

NAMES = ["a", "b", "up", "abs", "absf", "loop", "magic", "self", "..", ".", "secret", "new", ""]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("inroot")
    outside = base / "outside"
    (outside / "a").mkdir(parents=True)
    (outside / "secret").write_text("HOST\n")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "secret").write_text("inside\n")
    os.symlink("../../../../../..", root / "a" / "up")
    os.symlink(str(outside), root / "a" / "abs")
    os.symlink(str(outside / "secret"), root / "absf")
    os.symlink("/a/abs", root / "b")
    os.symlink("loop", root / "loop")
    os.symlink("/proc/self/root", root / "magic")
    os.symlink(str(outside), root / "a" / "b" / "self")
    return str(root), str(outside)


def _inside(fd: int, root: str) -> bool:
    real = os.readlink(f"/proc/self/fd/{fd}")
    return real == root or real.startswith(root + "/")


path_st = st.lists(st.sampled_from(NAMES), min_size=0, max_size=8).map("/".join)


@given(path=path_st, follow=st.booleans(), lead=st.booleans())
def test_locate_and_open_stay_inside(tree, path, follow, lead):
    root, _ = tree
    path = ("/" if lead else "") + path
    with inroot.Root.at(root) as r:
        try:
            e = r.locate(path, follow=follow)
        except OSError:
            e = None
        if e is not None:
            with e:
                assert _inside(e.dirfd, root), path
                assert "/" not in e.name and e.name != ".."
        try:
            fd = r.open(path, os.O_PATH)
        except OSError:
            return
        try:
            assert _inside(fd, root), path
        finally:
            os.close(fd)


@given(dest=path_st)
def test_copying_into_any_path_never_writes_outside(tree, tmp_path_factory, dest):
    root, outside = tree
    before = tree_snapshot(outside)
    src = tmp_path_factory.mktemp("src")
    (src / "secret").write_text("PWNED\n")
    (src / "a").mkdir()
    (src / "a" / "new").write_text("PWNED\n")
    with inroot.Root.at(root) as r, inroot.Root.host() as host:
        for name in ("secret", "a"):
            try:
                with host.locate(str(src / name)) as s, r.locate(dest + "/" + name) as d:
                    inroot.copy_entry(s, d.dirfd, d.name, inroot.CopyOptions(), name)
            except (OSError, inroot.CopyError):
                pass
    assert tree_snapshot(outside) == before
