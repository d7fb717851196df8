"""save/load: docker-archive and OCI archives, round trips, hostile archives, podman interop."""
import io
import json
import shutil
import subprocess
import tarfile

import pytest

from nsbox.image import archive, imageconfig
from nsbox.image.store import ImageStore
from nsbox.runtime.errors import InvalidArgument
from nsbox.runtime.paths import Paths
from nsbox_testlib import NSBOX_BIN

from .conftest import CLI_ENV, make_tar


def _two_layer(st, name):
    with st.import_guard():
        st.init()
        ds = [st.layers.ingest(io.BytesIO(make_tar([(f"l{i}", "file", str(i))])))[0] for i in range(2)]
        return st.commit_image(imageconfig.new_config(ds, changes=["CMD [\"sh\"]"]), [name])


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_roundtrip(store, tmp_path, nsbox, fmt):
    bb = store.ensure_default("busybox")
    two = _two_layer(store, "quay.io/me/two:1")
    out = tmp_path / "img.tar"
    nsbox("save", "--format", fmt, "-o", str(out), "busybox", "quay.io/me/two:1")
    other = ImageStore(Paths(str(tmp_path / "other"), str(tmp_path / "orun")))
    lines = archive.load(other, open(out, "rb"))
    assert lines == ["Loaded image: busybox:latest", "Loaded image: quay.io/me/two:1"]
    assert other.resolve("busybox").id == bb.id and other.resolve("quay.io/me/two:1").id == two.id
    assert other.resolve("quay.io/me/two:1").config == two.config
    # from stdin through the CLI into a third store, and an untagged save by id
    by_id = tmp_path / "byid.tar"
    nsbox("save", "--format", fmt, "-o", str(by_id), two.id[7:19])
    third = tmp_path / "third"
    p = subprocess.run([NSBOX_BIN, "--root", str(third), "--runroot", str(tmp_path / "run3"),
                        "load"], input=by_id.read_bytes(), capture_output=True, env=CLI_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == f"Loaded image ID: {two.id}"


def test_save_refuses_tty_and_unknown(nsbox):
    p = nsbox("save", "-o", "/dev/null", "nope", check=False)
    assert p.returncode == 125 and "No such image: nope" in p.stderr.decode()


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for n, data in members.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_hostile_archives(store):
    layer = make_tar([("f", "file", "1")])
    cfg = json.dumps(imageconfig.new_config(["sha256:" + "0" * 64])).encode()
    bad = [
        {"manifest.json": b'[{"Config":"../../../etc/passwd","Layers":[]}]'},
        {"manifest.json": b'[{"Config":"c.json","Layers":["l.tar"]}]', "c.json": cfg, "l.tar": layer},  # digest mismatch
        {"manifest.json": b'{"not":"a list"}'},
        {"nothing": b"here"},
    ]
    for members in bad:
        with pytest.raises(InvalidArgument):
            archive.load(store, io.BytesIO(_archive(members)))
    assert store.ids() == []


PODMAN = shutil.which("podman")


@pytest.mark.skipif(not PODMAN, reason="podman not installed (apt-get install podman)")
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_interop(store, tmp_path, nsbox, fmt, request):
    """nsbox save -> podman load, and podman save -> nsbox load, in podman's own throwaway storage."""
    import tempfile
    runroot = tempfile.mkdtemp(prefix="nsbpm-")   # podman wants a runroot under 50 characters
    request.addfinalizer(lambda: shutil.rmtree(runroot, ignore_errors=True))
    podman = [PODMAN, "--root", str(tmp_path / "proot"), "--runroot", runroot,
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def pm(*args):
        p = subprocess.run(podman + list(args), capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr.decode()
        return p.stdout.decode()
    bb = store.ensure_default("busybox")
    two = _two_layer(store, "quay.io/me/two:1")
    nsbox("save", "--format", fmt, "-o", str(tmp_path / "n.tar"), "busybox", "quay.io/me/two:1")
    pm("load", "-i", str(tmp_path / "n.tar"))
    ids = dict(l.split() for l in pm("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines())
    assert ids["docker.io/library/busybox:latest"].removeprefix("sha256:") == bb.id[7:]
    assert ids["quay.io/me/two:1"].removeprefix("sha256:") == two.id[7:]
    # and back: podman's archive into a fresh nsbox store
    pm("save", "--format", fmt, "-o", str(tmp_path / "p.tar"), "docker.io/library/busybox:latest")
    other = ImageStore(Paths(str(tmp_path / "other"), str(tmp_path / "orun")))
    assert archive.load(other, open(tmp_path / "p.tar", "rb")) == ["Loaded image: busybox:latest"]
    assert other.resolve("busybox").id == bb.id
    if fmt == "docker-archive":  # multi-image docker archive from podman
        pm("save", "-m", "-o", str(tmp_path / "m.tar"), "docker.io/library/busybox:latest", "quay.io/me/two:1")
        third = ImageStore(Paths(str(tmp_path / "third"), str(tmp_path / "trun")))
        archive.load(third, open(tmp_path / "m.tar", "rb"))
        assert third.resolve("quay.io/me/two:1").id == two.id
