"""Inside the VM lane guest only: vagrant/provision.sh for real, on the provisioned guest (no network).
  * a re-run is a fast no-op (apt packages present, venv already has nsbox from this repo)
  * --vagrant-guest on a pure-v2 machine leaves grub alone
  * --vagrant-guest with a v1 hierarchy mounted edits /etc/default/grub, runs update-grub and
    asks for a reboot (a named v1 hierarchy, a fake /etc/default/grub and a fake update-grub are used;
    the guest's root disk is a throw-away snapshot)."""
import os
import subprocess

import pytest

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROVISION = os.path.join(REPO, "vagrant", "provision.sh")
pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(os.environ.get("NSBOX_VM_LANE") != "1", reason="only inside the VM lane guest")]


def provision(*args, path_prefix=None):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(["bash", PROVISION, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=300)


def test_rerun_is_a_noop():
    r = provision("--no-link")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "apt packages: all present" in r.stdout and "nsbox already installed" in r.stdout


@pytest.fixture
def fake_grub(tmp_path):
    assert not os.path.exists("/etc/default/grub")
    os.makedirs("/etc/default", exist_ok=True)
    with open("/etc/default/grub", "w") as f:
        f.write('GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n')
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "update-grub").write_text(f"#!/bin/sh\ntouch {tmp_path}/update-grub-called\n")
    (fakebin / "update-grub").chmod(0o755)
    try:
        yield tmp_path
    finally:
        os.unlink("/etc/default/grub")
        if os.path.exists("/run/nsbox-reboot-required"):
            os.unlink("/run/nsbox-reboot-required")


def test_vagrant_guest_on_pure_v2_leaves_grub_alone(fake_grub):
    r = provision("--vagrant-guest", "--no-link", path_prefix=fake_grub / "bin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no v1 hierarchy mounted" in r.stdout
    assert 'GRUB_CMDLINE_LINUX=""' in open("/etc/default/grub").read()
    assert not (fake_grub / "update-grub-called").exists()
    assert not os.path.exists("/run/nsbox-reboot-required")


def test_vagrant_guest_with_v1_mounted_fixes_grub(fake_grub):
    mnt = fake_grub / "v1"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "cgroup", "-o", "none,name=nsboxlanetest", "cgroup", str(mnt)], check=True)
    try:
        r = provision("--vagrant-guest", "--no-link", path_prefix=fake_grub / "bin")
        r2 = provision("--vagrant-guest", "--no-link", path_prefix=fake_grub / "bin")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert r.returncode == 0 and r2.returncode == 0, r.stdout + r.stderr + r2.stdout + r2.stderr
    grub = open("/etc/default/grub").read()
    assert 'GRUB_CMDLINE_LINUX=" systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"' in grub
    assert grub.count("cgroup_no_v1=all") == 1          # the second run did not add it again
    assert (fake_grub / "update-grub-called").exists()
    assert os.path.exists("/run/nsbox-reboot-required")
    assert "reboot required" in r2.stdout
