"""upperdir -> layer_from_dir (OCI tar diff) -> extract(layer) reproduces the upperdir, whiteouts included."""
import os
import stat

from hypothesis import HealthCheck, given, settings, strategies as st

from nsbox.image.layers import LayerStore
from nsbox.image import whiteout as wh

name = st.sampled_from(["a", "b", "c", "d.e", "x y", "ü"])
node = st.deferred(lambda: st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=64)),
    st.tuples(st.just("sym"), st.sampled_from(["/etc/passwd", "../a", "b"])),
    st.tuples(st.just("wh"), st.none()),
    st.tuples(st.sampled_from(["dir", "opq"]), st.dictionaries(name, node, max_size=3)),
))
tree = st.dictionaries(name, node, max_size=5)


def build(path, t):
    for n, (kind, v) in t.items():
        p = os.path.join(path, n)
        if kind == "file":
            with open(p, "wb") as f:
                f.write(v)
        elif kind == "sym":
            os.symlink(v, p)
        elif kind == "wh":
            os.mknod(p, stat.S_IFCHR, os.makedev(0, 0))
        else:
            os.mkdir(p)
            if kind == "opq":
                os.setxattr(p, wh.OPAQUE_XATTR, b"y")
            build(p, v)


def snap(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            s = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISDIR(s.st_mode):
                out[rel] = ("dir", wh.is_opaque(p))
            elif stat.S_ISLNK(s.st_mode):
                out[rel] = ("sym", os.readlink(p))
            elif wh.is_overlay_whiteout(s):
                out[rel] = ("wh",)
            else:
                out[rel] = ("file", open(p, "rb").read(), stat.S_IMODE(s.st_mode))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree)
def test_roundtrip(tmp_path_factory, t):
    root = tmp_path_factory.mktemp("rt")
    ls = LayerStore(str(root / "store"))
    ls.init_dirs()
    upper = root / "upper"
    upper.mkdir()
    build(str(upper), t)
    diff_id, _ = ls.layer_from_dir(str(upper))
    again, _ = ls.layer_from_dir(str(upper))
    assert again == diff_id                       # deterministic for the same tree
    out = ls.ensure_extracted(diff_id)
    assert snap(out) == snap(str(upper))
