"""Container rootfs plans mounted for real (in throwaway mount namespaces): order, whiteouts, drivers."""
import io
import os
import tarfile

import pytest

from nsbox.image.store import ImageStore
from nsbox.runtime.paths import Paths

from .conftest import in_mount_ns, make_tar, mount_plan


def _image(store, layers: list[bytes], name: str):
    """A multi-layer image through the public pieces: blobs + config + commit."""
    from nsbox.image import imageconfig
    with store.import_guard():
        store.init()
        diff_ids = [store.layers.ingest(io.BytesIO(t))[0] for t in layers]
        return store.commit_image(imageconfig.new_config(diff_ids), [name])


def _view(target):
    out = {}
    for d, dirs, files in os.walk(target):
        for n in files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, target)] = open(p).read() if not os.path.islink(p) else "->" + os.readlink(p)
    return out


BASE = make_tar([("a", "dir"), ("a/keep", "file", "k"), ("a/gone", "file", "g"), ("o", "dir"),
                 ("o/hidden", "file", "h"), ("f", "file", "base")])
TOP = make_tar([("a", "dir"), ("a/.wh.gone", "file"), ("o", "dir"), ("o/.wh..wh..opq", "file"),
                ("o/new", "file", "n"), ("f", "file", "top")])
EXPECT = {"a/keep": "k", "o/new": "n", "f": "top"}


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_whiteouts_and_opaque(paths, tmp_path, driver):
    st = ImageStore(paths, driver=driver)
    img = _image(st, [BASE, TOP], "wh")
    plan = st.prepare_rootfs("c1", img.id, str(tmp_path / "c1"))
    assert plan.kind == driver
    if driver == "overlay":
        assert plan.lowerdirs == [st.layers.layer_dir(d) for d in reversed(img.layers)]  # TOP first
    target = str(tmp_path / "merged")
    assert in_mount_ns(lambda: (mount_plan(plan, target), _view(target))[1]) == EXPECT
    assert not os.listdir(target) if os.path.isdir(target) else True   # nothing stayed mounted
    st.release_rootfs("c1", str(tmp_path / "c1"))
    assert not os.path.exists(tmp_path / "c1" / "upper") and not os.path.exists(tmp_path / "c1" / "rootfs")


def test_64_layers_top_wins(paths, tmp_path):
    st = ImageStore(paths, driver="overlay")
    layers = [make_tar([(f"l{i:02d}", "file", str(i)), ("who", "file", str(i))]) for i in range(64)]
    img = _image(st, layers, "deep")
    plan = st.prepare_rootfs("c", img.id, str(tmp_path / "c"))
    assert len(plan.lowerdirs) == 64
    assert len(":".join(plan.lowerdirs)) > 4096  # forces the fsconfig path of overlay_mount
    target = str(tmp_path / "m")
    view = in_mount_ns(lambda: (mount_plan(plan, target), _view(target))[1])
    assert view["who"] == "63" and len(view) == 65


def test_copy_fallback_when_store_on_overlayfs(tmp_path):
    """A store living on overlayfs cannot host overlay layers: the probe picks the copy driver."""
    def inner():
        from nsbox.runtime import linux
        sc = linux.Syscalls()
        for d in ("l", "u", "w", "m"):
            os.makedirs(tmp_path / "ovl" / d)
        linux.overlay_mount(sc, [str(tmp_path / "ovl/l")], str(tmp_path / "ovl/u"), str(tmp_path / "ovl/w"),
                            str(tmp_path / "ovl/m"))
        root = str(tmp_path / "ovl/m/root")
        st = ImageStore(Paths(root, str(tmp_path / "run")))
        img = _image(st, [BASE, TOP], "x")
        plan = st.prepare_rootfs("c", img.id, os.path.join(root, "containers", "c"))
        target = str(tmp_path / "merged")
        mount_plan(plan, target)
        with open(os.path.join(root, "image", "driver")) as f:
            cached = f.read()
        return st.driver_name, cached, plan.kind, _view(target)
    name, cached, kind, view = in_mount_ns(inner)
    assert (name, cached, kind) == ("copy", "copy", "copy")
    assert view == EXPECT


def test_driver_probe_on_ext4(store):
    assert store.driver_name == "overlay"
    assert open(os.path.join(store.root, "driver")).read() == "overlay"


def test_commit_roundtrip(paths, tmp_path):
    """Changes in a container (delete, opaque, new) -> layer_from_dir -> a child image showing the same view."""
    st = ImageStore(paths, driver="overlay")
    img = _image(st, [BASE], "base")
    plan = st.prepare_rootfs("c", img.id, str(tmp_path / "c"))
    target = str(tmp_path / "m")

    def work():
        import shutil
        mount_plan(plan, target)
        os.unlink(os.path.join(target, "a/gone"))
        shutil.rmtree(os.path.join(target, "o"))
        os.mkdir(os.path.join(target, "o"))          # recreated dir: overlay marks it opaque
        open(os.path.join(target, "o/new"), "w").write("n")
        open(os.path.join(target, "f"), "w").write("top")
        os.symlink("/f", os.path.join(target, "ln"))
        return _view(target)
    changed = in_mount_ns(work)
    child = st.commit_container("c", plan.upper, ["CMD [\"/f\"]"], "m", "me", image_id=img.id, ref="child:1")
    assert len(child.layers) == 2 and child.layers[0] == img.layers[0]
    assert child.config["config"]["Cmd"] == ["/f"] and child.config["author"] == "me"
    with tarfile.open(st.layers.blob_path(child.layers[1])) as t:
        names = t.getnames()
    assert "a/.wh.gone" in names and "o/.wh..wh..opq" in names
    for driver in ("overlay", "copy"):
        st2 = ImageStore(paths, driver=driver)
        p2 = st2.prepare_rootfs("d", child.id, str(tmp_path / f"d-{driver}"))
        t2 = str(tmp_path / f"m2-{driver}")
        assert in_mount_ns(lambda: (mount_plan(p2, t2), _view(t2))[1]) == changed


def test_export(paths, tmp_path):
    from nsbox.image.store import export_rootfs
    st = ImageStore(paths, driver="overlay")
    img = _image(st, [BASE, TOP], "e")
    plan = st.prepare_rootfs("c", img.id, str(tmp_path / "c"))
    open(os.path.join(plan.upper, "added"), "w").write("u")
    buf = io.BytesIO()
    export_rootfs(plan, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        files = {m.name: t.extractfile(m).read().decode() for m in t if m.isfile()}
    assert files == dict(EXPECT, added="u")
    # copy plan exports the same, here as a returned stream
    st2 = ImageStore(paths, driver="copy")
    plan2 = st2.prepare_rootfs("c2", img.id, str(tmp_path / "c2"))
    with export_rootfs(plan2) as stream, tarfile.open(fileobj=stream, mode="r|") as t:
        assert {m.name for m in t if m.isfile()} == set(EXPECT)
