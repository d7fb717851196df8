"""The build context (or another stage's rootfs) as a chroot: sources resolved without escaping it.

`secure_join` walks a path one component at a time, resolving symlinks as if `root` were `/` and
clamping `..` at the root, so `../../etc/passwd` or a symlink to `/etc` stays inside. Globs are
matched per component (`*`/`?`/`[..]` never cross `/`), like Go's filepath.Match.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field

from nsbox.image.build import dockerignore
from nsbox.runtime.errors import InvalidArgument

_MAGIC = set("*?[")


def secure_join(root: str, path: str, follow_last: bool = True) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if done:
                done.pop()
            continue
        cand = os.path.join(root, *done, p)
        if (parts or follow_last) and os.path.islink(cand):
            hops += 1
            if hops > 255:
                raise InvalidArgument(f"too many levels of symbolic links: {path}")
            target = os.readlink(cand)
            if target.startswith("/"):
                done = []
            parts = [q for q in target.split("/") if q not in ("", ".")] + parts
            continue
        done.append(p)
    return os.path.join(root, *done)


def has_magic(s: str) -> bool:
    return any(c in _MAGIC for c in s)


@dataclass
class Source:
    rel: str      # path inside the root, as matched ("dir/a.txt")
    path: str     # resolved host path


@dataclass
class Context:
    root: str
    ignore: dockerignore.Matcher = field(default_factory=dockerignore.Matcher)

    def excluded(self, rel: str) -> bool:
        return bool(self.ignore.patterns) and self.ignore.excluded(rel)

    def expand(self, src: str) -> list[Source]:
        """One COPY/ADD source (maybe a glob) -> the existing, not-ignored paths it names."""
        parts = [p for p in src.split("/") if p not in ("", ".")]
        # normalise `..` lexically first (clamped at the root), like docker's filepath.Clean of "/"+src
        clean: list[str] = []
        for p in parts:
            if p == "..":
                if clean:
                    clean.pop()
            else:
                clean.append(p)
        if not any(has_magic(p) for p in clean):
            rel = "/".join(clean)
            path = secure_join(self.root, rel)
            if not os.path.lexists(path) or (rel and self.excluded(rel)):
                return []
            return [Source(rel or ".", path)]
        from nsbox.image.build.dockerignore import compile_pattern
        found = [("", self.root)]
        for p in clean:
            nxt = []
            rx = compile_pattern(p) if has_magic(p) else None
            for rel, path in found:
                if not os.path.isdir(path):
                    continue
                names = sorted(os.listdir(path)) if rx else [p]
                for name in names:
                    if rx and not rx.match(name):
                        continue
                    r = f"{rel}/{name}" if rel else name
                    hp = secure_join(self.root, r)
                    if os.path.lexists(hp):
                        nxt.append((r, hp))
            found = nxt
        return [Source(r, hp) for r, hp in found if not self.excluded(r)]

    def walk(self, src: Source):
        """Yield (rel_inside_src, host_path, lstat) for src and everything below it, skipping ignored."""
        st = os.stat(src.path)
        yield "", src.path, st
        if not stat.S_ISDIR(st.st_mode):
            return
        base = "" if src.rel == "." else src.rel
        stack = [("", src.path)]
        while stack:
            rel, path = stack.pop()
            for name in sorted(os.listdir(path)):
                r = f"{rel}/{name}" if rel else name
                full = os.path.join(path, name)
                ctx_rel = f"{base}/{r}" if base else r
                lst = os.lstat(full)
                if self.excluded(ctx_rel):
                    # an excluded dir may still hold `!exception` files
                    if not (stat.S_ISDIR(lst.st_mode) and self.ignore.has_exclusions):
                        continue
                    stack.append((r, full))
                    continue
                yield r, full, lst
                if stat.S_ISDIR(lst.st_mode):
                    stack.append((r, full))

    def checksum(self, sources: list[Source]) -> str:
        """Content hash of what a COPY/ADD would copy (names, modes, owners, data, link targets)."""
        h = hashlib.sha256()
        for src in sources:
            h.update(b"S" + src.rel.encode("utf-8", "surrogateescape") + b"\0")
            for rel, path, st in self.walk(src):
                h.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode("utf-8", "surrogateescape"))
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(path).encode("utf-8", "surrogateescape"))
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
                h.update(b"\0")
        return h.hexdigest()
