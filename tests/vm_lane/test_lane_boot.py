"""Host-side, slow: really boot the VM lane (builds the image first if the cache has none)."""
import os
import shutil
import subprocess

import pytest

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN = os.path.join(REPO, "vagrant", "vm-lane", "run")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("NSBOX_VM_LANE") == "1", reason="host side only"),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
                       reason="needs root and qemu (vagrant/provision.sh --lane-host)"),
    pytest.mark.timeout(3600),
]


def qemu_pids():
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if open(f"/proc/{p}/comm").read().strip().startswith("qemu-system"):
                    out.add(int(p))
            except OSError:
                pass
    return out


def test_output_and_exit_code_propagate():
    r = subprocess.run([RUN, "--timeout", "900", "--", "echo hello-$((6*7)) from $(hostname); exit 7"],
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 7, r.stderr[-3000:]
    assert "hello-42 from vm" in r.stdout


def test_boot_timeout_kills_qemu_and_returns_124():
    before = qemu_pids()
    r = subprocess.run([RUN, "--no-build", "--boot-timeout", "0.5", "--", "true"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 124, r.stderr[-3000:]
    assert "did not boot" in r.stderr
    assert not (qemu_pids() - before), "qemu left behind"
