"""The embedded `busybox` image, built on first use from Debian's busybox-static.

Reproducible: every tar header is fixed (uid/gid 0, mtime = the busybox binary's mtime, sorted
entries), and so is the config's `created`, so two racing first uses produce byte-identical
blobs and the same image id; the store's commit is idempotent, so the race is harmless.
"""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
from datetime import datetime, timezone

from nsbox.runtime.errors import NotFound

BUSYBOX = "/bin/busybox"
NAME = "busybox:latest"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
SHADOW = "".join(f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in PASSWD.splitlines())
DIRS = {  # path -> mode
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "etc/network": 0o755, "home": 0o755, "proc": 0o555,
    "root": 0o700, "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
    "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755,
}


def _applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted({p.strip().lstrip("/") for p in out.splitlines() if p.strip()} - {"bin/busybox"})


def _version() -> str:
    r = subprocess.run([BUSYBOX], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0].strip() if (r.stdout or r.stderr) else "BusyBox"


def build_tar(mtime: int) -> bytes:
    """The rootfs tar, byte-for-byte reproducible for a given busybox binary."""
    buf = io.BytesIO()
    entries: dict[str, tarfile.TarInfo] = {}
    data: dict[str, bytes] = {}

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = kind, mode, mtime, 0, 0, "", ""
        return ti

    applets = _applets()
    for d, mode in DIRS.items():
        entries[d] = info(d, tarfile.DIRTYPE, mode)
    for a in applets:  # parents of unusual applet paths
        parent = os.path.dirname(a)
        while parent and parent not in entries:
            entries[parent] = info(parent, tarfile.DIRTYPE, 0o755)
            parent = os.path.dirname(parent)
    with open(BUSYBOX, "rb") as f:
        data["bin/busybox"] = f.read()
    entries["bin/busybox"] = info("bin/busybox", tarfile.REGTYPE, 0o755)
    for name, text, mode in (("etc/passwd", PASSWD, 0o644), ("etc/group", GROUP, 0o644),
                             ("etc/shadow", SHADOW, 0o640)):
        data[name] = text.encode()
        entries[name] = info(name, tarfile.REGTYPE, mode)
    for a in applets:
        ti = info(a, tarfile.SYMTYPE, 0o777)
        ti.linkname = "/bin/busybox"
        entries[a] = ti
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(entries):  # sorted: parents before children, stable order
            ti = entries[name]
            if name in data:
                ti.size = len(data[name])
                tar.addfile(ti, io.BytesIO(data[name]))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def create(store):
    """Build and import the default image through the ordinary import path."""
    try:
        mtime = int(os.stat(BUSYBOX).st_mtime)
    except FileNotFoundError:
        raise NotFound(f"No such image: busybox (the embedded default needs {BUSYBOX}: apt-get install busybox-static)") from None
    created = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tar = build_tar(mtime)
    return store.import_tar(io.BytesIO(tar), NAME, created=created, config={"Cmd": ["sh"]},
                            message=f"nsbox embedded image from Debian busybox-static ({_version()})")
