"""`nsbox commit` / `nsbox export` on a container record (fake: config.json + upper dir, no process)."""
import io
import json
import os
import tarfile

import pytest



@pytest.fixture
def container(paths, store):
    img = store.ensure_default("busybox")
    cid = "ab" * 32
    d = paths.container_dir(cid)
    os.makedirs(os.path.join(d, "upper", "etc"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"Id": cid, "Image": img.id, "Name": "c"}, f)
    with open(os.path.join(d, "upper", "etc", "motd"), "w") as f:
        f.write("hello from the container\n")
    os.mknod(os.path.join(d, "upper", "linuxrc"), 0o20000, os.makedev(0, 0))  # deleted in the container
    return cid, img


def test_commit_cli(container, store, nsbox):
    cid, base = container
    out = nsbox("commit", "-a", "me", "-m", "msg", "-c", "ENV X=1", cid[:12], "mine:v1").stdout.decode().strip()
    img = store.resolve("mine:v1")
    assert img.id == out and img.layers[:1] == base.layers and len(img.layers) == 2
    assert "X=1" in img.config["config"]["Env"] and img.config["config"]["Cmd"] == ["sh"]
    h = nsbox("history", "mine:v1").stdout.decode().splitlines()
    assert len(h) == 3 and "msg" in h[1]
    with tarfile.open(store.layers.blob_path(img.layers[1])) as t:
        assert set(t.getnames()) == {"etc", "etc/motd", ".wh.linuxrc"}


def test_export_cli(container, nsbox, tmp_path):
    cid, _ = container
    data = nsbox("export", cid).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = set(t.getnames())
        assert t.extractfile("etc/motd").read() == b"hello from the container\n"
    assert "bin/busybox" in names and "linuxrc" not in names
    nsbox("export", "-o", str(tmp_path / "x.tar"), cid)
    assert (tmp_path / "x.tar").read_bytes() == data
