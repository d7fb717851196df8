"""`nsbox image bootstrap debian:SUITE`: debootstrap from a Debian mirror, imported as one layer.

No registry involved: the rootfs comes straight from the Debian archive.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from nsbox.image import reference
from nsbox.runtime.errors import InvalidArgument, NsboxError


def bootstrap(store, ref: str = "debian:bookworm", *, mirror: str = "http://deb.debian.org/debian",
              variant: str = "minbase", log=lambda s: None):
    r = reference.parse(ref)
    if r.familiar_repository != "debian":
        raise InvalidArgument(f"bootstrap only knows debian:<suite>, not {ref}")
    suite = r.tag or "bookworm"
    if not shutil.which("debootstrap"):
        raise NsboxError("debootstrap is not installed (apt-get install debootstrap)")
    store.init()
    with store.import_guard():  # GC must not collect the work dir while debootstrap runs
        return _bootstrap(store, ref, suite, mirror, variant, log)


def _bootstrap(store, ref, suite, mirror, variant, log):
    # same filesystem as the store, and removed by prune if we are killed
    from nsbox.image.leftovers import owned
    work = tempfile.mkdtemp(dir=store.layers.tmp, prefix=owned("bootstrap-"))
    try:
        rootfs = os.path.join(work, "rootfs")
        log(f"debootstrap --variant={variant} {suite} from {mirror} ...")
        # in a private mount ns: the /proc and /sys debootstrap mounts vanish with it, even if killed
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "debootstrap", f"--variant={variant}", suite, rootfs, mirror],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            tail = "\n".join(p.stdout.splitlines()[-5:])
            raise NsboxError(f"debootstrap failed (exit {p.returncode}): {tail}")
        # what the official debian images drop: downloaded .debs and apt lists
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            d = os.path.join(rootfs, sub)
            for name in os.listdir(d) if os.path.isdir(d) else []:
                full = os.path.join(d, name)
                if os.path.isfile(full) and name not in ("lock",):
                    os.unlink(full)
        tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=security.capability",
                                "-C", rootfs, "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            img = store.import_tar(tar.stdout, ref, config={"Cmd": ["bash"]},
                                   message=f"debootstrap --variant={variant} {suite} {mirror}")
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise NsboxError("tar of the bootstrapped rootfs failed")
        return img
    finally:
        shutil.rmtree(work, ignore_errors=True)
