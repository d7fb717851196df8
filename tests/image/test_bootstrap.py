"""`nsbox image bootstrap debian:bookworm` (debootstrap from the Debian mirror: about a minute, needs network)."""
import os

import pytest

from .conftest import in_mount_ns, mount_plan


@pytest.mark.slow
def test_bootstrap_debian(store, nsbox, tmp_path):
    out = nsbox("image", "bootstrap", "debian:bookworm").stdout.decode().strip()
    img = store.resolve("debian:bookworm")
    assert img.id == out and len(img.layers) == 1 and img.config["config"]["Cmd"] == ["bash"]
    plan = store.prepare_rootfs("c", img.id, str(tmp_path / "c"))
    target = str(tmp_path / "m")

    def look():
        mount_plan(plan, target)
        with open(os.path.join(target, "etc/os-release")) as f:
            return f.read(), os.path.exists(os.path.join(target, "usr/bin/apt-get"))
    osr, apt = in_mount_ns(look)
    assert 'VERSION_CODENAME=bookworm' in osr and apt
    assert os.listdir(store.layers.tmp) == []
