"""Every on-disk location nsbox uses, derived from two roots.

root    (--root, NSBOX_ROOT, default /var/lib/nsbox): persistent state and the image store.
runroot (--runroot, NSBOX_RUNROOT, default /run/nsbox): state that must not survive a reboot.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_ROOT = "/var/lib/nsbox"
DEFAULT_RUNROOT = "/run/nsbox"


@dataclass(frozen=True)
class Paths:
    root: str = DEFAULT_ROOT
    runroot: str = DEFAULT_RUNROOT

    @classmethod
    def from_env(cls, root: str | None = None, runroot: str | None = None) -> "Paths":
        root = root or os.environ.get("NSBOX_ROOT") or DEFAULT_ROOT
        runroot = runroot or os.environ.get("NSBOX_RUNROOT") or DEFAULT_RUNROOT
        return cls(os.path.abspath(root), os.path.abspath(runroot))

    # persistent
    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    @property
    def names(self) -> str:
        return os.path.join(self.root, "names")

    @property
    def images(self) -> str:
        return os.path.join(self.root, "image")

    @property
    def volumes(self) -> str:
        return os.path.join(self.root, "volumes")

    @property
    def networks(self) -> str:
        return os.path.join(self.root, "networks")

    @property
    def pods(self) -> str:
        return os.path.join(self.root, "pods")

    # runtime
    def run_dir(self, cid: str) -> str:
        return os.path.join(self.runroot, "containers", cid)

    @property
    def netns_dir(self) -> str:
        return os.path.join(self.runroot, "netns")

    @property
    def tag(self) -> str:
        """Short hash of the state root: names this root's kernel objects (cgroup parent, nft
        tables, veth aliases), so one root never touches another's (parallel test runs)."""
        import hashlib
        return hashlib.sha256(self.root.encode()).hexdigest()[:8]

    @property
    def cgroup_parent(self) -> str:
        """The cgroup path (relative to each hierarchy) all of this root's containers live under."""
        return "nsbox" if self.root == DEFAULT_ROOT else f"nsbox-{self.tag}"
