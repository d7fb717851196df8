"""kill -9 in the middle of an import leaves no half image; prune removes the debris."""
import io
import os
import signal
import subprocess
import time

from nsbox.image.store import ImageStore

from .conftest import CLI_ENV, NSBOX, make_tar


def _wait_for(pred, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_kill9_mid_import(paths, store):
    store.init()
    big = make_tar([("d", "dir"), ("d/big", "file", os.urandom(1 << 20) * 24), ("d/after", "file", "x")])
    p = subprocess.Popen([NSBOX, "--root", paths.root, "--runroot", paths.runroot, "import", "-", "half"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CLI_ENV)
    try:
        p.stdin.write(big[: len(big) // 2])
        p.stdin.flush()
        assert _wait_for(lambda: any(n.startswith("blob-") for n in os.listdir(store.layers.tmp)))
        live = os.listdir(store.layers.tmp)
        ImageStore(paths)                        # another command's store open...
        assert os.listdir(store.layers.tmp) == live  # ...keeps what a live import is writing
    finally:
        os.kill(p.pid, signal.SIGKILL)   # only the process we started, by pid
        p.wait()
        p.stdin.close()
    assert os.listdir(store.layers.tmp) == live  # the debris of the dead import...
    st = ImageStore(paths)
    assert os.listdir(st.layers.tmp) == []       # ...is gone at the next store open
    assert st.ids() == [] and not st.exists("half")
    assert os.listdir(st.layers.layers) == [] and os.listdir(st.layers.blobs) == []
    assert st.import_tar(io.BytesIO(big), "half").names == ["half:latest"]


def test_orphan_layer_collected(store):
    """A crash after the layer was extracted but before the metadata commit leaves an orphan: GC removes it."""
    store.init()
    with store.import_guard():
        diff_id, _ = store.layers.ingest(io.BytesIO(make_tar([("f", "file", "1")])))
        store.layers.ensure_extracted(diff_id)
    keep = store.import_tar(io.BytesIO(make_tar([("g", "file", "2")])), "keep")
    removed = store.gc()
    assert removed["layers"] == 1 and removed["blobs"] == 1
    assert os.listdir(store.layers.layers) == [keep.layers[0][7:]]
    assert store.resolve("keep").id == keep.id


def test_gc_waits_for_running_import(store):
    """GC never runs while an import holds the guard (non-blocking GC just skips)."""
    store.init()
    with store.import_guard():
        store.layers.ingest(io.BytesIO(make_tar([("f", "file", "1")])))
        assert store.gc(blocking=False) == {"blobs": 0, "layers": 0, "tmp": 0, "bytes": 0}
        assert len(os.listdir(store.layers.blobs)) == 1
