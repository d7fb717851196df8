"""OCI whiteouts (`.wh.<name>`, `.wh..wh..opq` in tar diffs) <-> overlayfs whiteouts (char 0:0, opaque xattr).

Overlayfs (index=off, redirect_dir=off on this kernel) marks a deleted lower file with a 0:0 character
device in the upper/layer dir and a directory whose lower contents are hidden with the
`trusted.overlay.opaque=y` xattr. Tar diffs carry the OCI spelling instead.
"""
from __future__ import annotations

import os
import stat

WH_PREFIX = ".wh."
WH_META_PREFIX = ".wh..wh."      # reserved AUFS names: only the opaque marker means something
WH_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."


def is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_overlay_whiteout(name: str, dir_fd: int) -> None:
    os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)


def set_opaque(dir_fd: int) -> None:
    os.setxattr(dir_fd, OPAQUE_XATTR, b"y")


def is_opaque(path: str | int) -> bool:
    try:
        if isinstance(path, int):   # a directory fd
            return os.getxattr(path, OPAQUE_XATTR) == b"y"
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def whiteout_target(basename: str) -> str | None:
    """`.wh.foo` -> `foo`; None for the opaque marker and other reserved names."""
    if basename.startswith(WH_META_PREFIX):
        return None
    return basename[len(WH_PREFIX):]
