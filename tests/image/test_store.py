"""Image store: default image, imports, names, layer sharing, rmi, prune (real filesystem)."""
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile

import pytest

from nsbox.image import default
from nsbox.image.store import ImageStore
from nsbox.runtime.errors import Conflict, NotFound

from .conftest import make_tar


def test_default_busybox(store):
    with pytest.raises(NotFound, match="No such image: busybox"):
        store.resolve("busybox")
    img = store.ensure_default("busybox")
    assert img.id.startswith("sha256:") and len(img.id) == 71
    assert img.names == ["busybox:latest"]
    assert img.config["config"]["Cmd"] == ["sh"]
    assert img.config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert img.config["rootfs"]["type"] == "layers" and len(img.layers) == 1
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", img.id, img.id[7:19], img.id[7:10]):
        assert store.resolve(ref).id == img.id
    layer = store.layers.ensure_extracted(img.layers[0])
    assert os.path.islink(os.path.join(layer, "bin/sh")) and os.readlink(os.path.join(layer, "bin/sh")) == "/bin/busybox"
    assert oct(os.lstat(os.path.join(layer, "tmp")).st_mode & 0o7777) == "0o1777"
    assert "nobody:x:65534" in open(os.path.join(layer, "etc/passwd")).read()
    # ensure_default of something else is a plain NotFound
    with pytest.raises(NotFound):
        store.ensure_default("alpine")


def test_default_reproducible(tmp_path):
    from nsbox.runtime.paths import Paths
    a = ImageStore(Paths(str(tmp_path / "a"), str(tmp_path / "ra"))).ensure_default("busybox")
    b = ImageStore(Paths(str(tmp_path / "b"), str(tmp_path / "rb"))).ensure_default("busybox")
    assert a.id == b.id and a.layers == b.layers
    assert default.build_tar(123) == default.build_tar(123)


def test_default_concurrent_first_use(paths, nsbox):
    """Four CLIs racing to create the default image: one image, one layer, a consistent store."""
    code = ("import sys; from nsbox.runtime.paths import Paths; from nsbox.image.store import ImageStore;"
            "print(ImageStore(Paths(sys.argv[1], sys.argv[2])).ensure_default('busybox').id)")
    procs = [subprocess.Popen([sys.executable, "-c", code, paths.root, paths.runroot], stdout=subprocess.PIPE)
             for _ in range(4)]
    ids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(ids) == 1
    st = ImageStore(paths)
    assert len(st.ids()) == 1
    assert len(os.listdir(st.layers.layers)) == 1
    assert os.listdir(st.layers.tmp) == []
    assert b"busybox" in nsbox("images").stdout


ROOTFS = make_tar([("etc", "dir"), ("etc/hello", "file", "hello\n"), ("bin", "dir"), ("bin/x", "file", "#!/bin/sh\n")])


@pytest.mark.parametrize("compress", [None, "gz", "xz"])
def test_import_file_formats(store, tmp_path, nsbox, compress):
    data = {None: ROOTFS, "gz": gzip.compress(ROOTFS), "xz": lzma.compress(ROOTFS)}[compress]
    f = tmp_path / f"rootfs.tar{'.' + compress if compress else ''}"
    f.write_bytes(data)
    out = nsbox("import", str(f), "myimg:v1").stdout.decode().strip()
    img = store.resolve("myimg:v1")
    assert out == img.id
    assert img.layers == ["sha256:" + __import__("hashlib").sha256(ROOTFS).hexdigest()]
    assert img.config["history"][0]["comment"] == f"Imported from {f}"


def test_import_stdin_and_changes(store, nsbox):
    out = nsbox("import", "-c", "CMD [\"/bin/x\"]", "-c", "ENV A=1", "-c", "WORKDIR /etc", "-c", "EXPOSE 80",
                "-m", "msg", "-", "fromstdin", input=gzip.compress(ROOTFS)).stdout.decode().strip()
    img = store.resolve("fromstdin")
    assert img.id == out
    cc = img.config["config"]
    assert cc["Cmd"] == ["/bin/x"] and "A=1" in cc["Env"] and cc["WorkingDir"] == "/etc"
    assert cc["ExposedPorts"] == {"80/tcp": {}}
    assert img.config["history"][0]["comment"] == "msg"


def test_import_bad_input(nsbox, tmp_path):
    p = nsbox("import", "-", "x", input=b"garbage" * 100, check=False)
    assert p.returncode == 125 and p.stderr.decode().startswith("Error:")
    p = nsbox("import", str(tmp_path / "missing.tar"), "x", check=False)
    assert p.returncode == 125
    p = nsbox("import", "-", "Bad:Name:x", input=ROOTFS, check=False)
    assert p.returncode == 125


def test_layer_sharing(store):
    a = store.import_tar(io.BytesIO(ROOTFS), "a")
    b = store.import_tar(io.BytesIO(gzip.compress(ROOTFS)), "b")
    assert a.layers == b.layers
    assert len(os.listdir(store.layers.layers)) == 1
    # the store keeps the layer while any image uses it
    store.remove("a")
    assert os.path.isdir(store.layers.layer_dir(b.layers[0]))
    store.remove("b")
    assert not os.path.exists(store.layers.layer_dir(b.layers[0]))
    assert not store.layers.has_blob(b.layers[0])


def test_tag_untag_and_images_output(store, nsbox):
    img = store.import_tar(io.BytesIO(ROOTFS), "one")
    nsbox("tag", "one", "quay.io/x/two:t")
    out = nsbox("images").stdout.decode().splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(l.split()[:3] == ["one", "latest", img.short_id] for l in out)
    assert any(l.split()[:3] == ["quay.io/x/two", "t", img.short_id] for l in out)
    assert nsbox("images", "-q").stdout.decode().split() == [img.short_id]
    assert nsbox("images", "-q", "--no-trunc").stdout.decode().split() == [img.id]
    out = nsbox("rmi", "one").stdout.decode().splitlines()
    assert out == ["Untagged: one:latest"]
    out = nsbox("rmi", "quay.io/x/two:t").stdout.decode().splitlines()
    assert out == ["Untagged: quay.io/x/two:t", f"Deleted: {img.id}"]
    assert nsbox("images", "-q").stdout == b""


def test_inspect_and_history(store, nsbox):
    img = store.ensure_default("busybox")
    doc = json.loads(nsbox("image", "inspect", "busybox").stdout)
    assert doc[0]["Id"] == img.id and doc[0]["RepoTags"] == ["busybox:latest"]
    assert doc[0]["Config"]["Cmd"] == ["sh"] and doc[0]["RootFS"]["Layers"] == img.layers
    assert doc[0]["Os"] == "linux" and doc[0]["Size"] == img.size
    assert nsbox("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip() == img.id
    p = nsbox("image", "inspect", "nope", check=False)
    assert p.returncode == 125 and "No such image: nope" in p.stderr.decode()
    h = nsbox("history", "busybox").stdout.decode().splitlines()
    assert h[0].split()[0] == "IMAGE" and h[1].startswith(img.short_id)


def _fake_container(paths, cid, image_id):
    d = paths.container_dir(cid)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"Image": image_id, "Name": "c"}, f)


def test_rmi_refused_while_used(store, paths, nsbox):
    img = store.import_tar(io.BytesIO(ROOTFS), "used")
    cid = "c" * 64
    _fake_container(paths, cid, img.id)
    with pytest.raises(Conflict, match=f"container {cid[:12]} is using its referenced image {img.id[7:19]}"):
        store.remove("used")
    p = nsbox("rmi", "used", check=False)
    assert p.returncode != 0 and "conflict: unable to remove repository reference" in p.stderr.decode()
    with pytest.raises(Conflict):
        store.remove(img.id[7:19])
    # -f by name untags but keeps the image the container needs
    assert store.remove("used", force=True) == ["Untagged: used:latest"]
    assert store.get(img.id).names == []
    # prune -a keeps it too
    store.prune(all=True)
    assert store.get(img.id)


def test_prune(store, nsbox):
    a = store.import_tar(io.BytesIO(ROOTFS), "keep")
    b = store.import_tar(io.BytesIO(make_tar([("x", "file", "1")])), None)  # dangling
    out = nsbox("image", "prune", "-f").stdout.decode()
    assert f"deleted: {b.id}" in out
    assert store.ids() == [a.id]
    out = nsbox("image", "prune", "-a", "-f").stdout.decode()
    assert "untagged: keep:latest" in out and store.ids() == []
    assert os.listdir(store.layers.blobs) == []


def test_ambiguous_and_invalid(store):
    with pytest.raises(NotFound):
        store.resolve("deadbeef")
    with pytest.raises(NotFound):
        store.resolve("sha256:" + "0" * 64)


def test_shared_base_layer_stored_once(store):
    from nsbox.image import imageconfig
    base, top = make_tar([("b", "file", "base")]), make_tar([("t", "file", "top")])
    with store.import_guard():
        store.init()
        db = store.layers.ingest(io.BytesIO(base))[0]
        dt = store.layers.ingest(io.BytesIO(top))[0]
        one = store.commit_image(imageconfig.new_config([db]), ["one"])
        two = store.commit_image(imageconfig.new_config([db, dt]), ["two"])
    assert one.layers[0] == two.layers[0]
    assert sorted(os.listdir(store.layers.layers)) == sorted([db[7:], dt[7:]])
    store.remove("two")
    assert os.listdir(store.layers.layers) == [db[7:]]


def test_import_warns_about_device_nodes(nsbox, store):
    tar = make_tar([("dev", "dir"), ("dev/null", "chr", (1, 3)), ("ok", "file", "1")])
    p = nsbox("import", "-", "devs", input=tar)
    assert "skipped 1 device node(s) (dev/null)" in p.stderr.decode()
    assert not os.path.exists(os.path.join(store.layers.layer_dir(store.resolve("devs").layers[0]), "dev/null"))


def test_import_of_a_4mib_member_name_fails_in_one_short_line(nsbox, tmp_path):
    p = tmp_path / "big.tar"
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("a" * (4 << 20))
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    r = nsbox("import", str(p), "big", check=False)
    err = r.stderr.decode()
    assert r.returncode == 125
    assert len(err.splitlines()) == 1 and len(err) <= 1000 + len("Error: \n")
    assert "aaaa..." in err


def test_import_warns_about_device_nodes_every_time(nsbox, store, tmp_path):
    tar = make_tar([("dev", "dir"), ("dev/null", "chr", (1, 3)), ("dev/sda", "blk", (8, 0)), ("ok", "file", "1")])
    p = tmp_path / "devs.tar"
    p.write_bytes(tar)
    first = nsbox("import", str(p), "devs1").stderr.decode()
    again = nsbox("import", "-m", "again", str(p), "devs2").stderr.decode()   # same layer, already extracted
    for err in (first, again):
        assert "skipped 2 device node(s)" in err and "dev/null" in err and "dev/sda" in err
