""".dockerignore: moby's patternmatcher rules.

Each line is a pattern (`#` comments, blank lines skipped), cleaned like filepath.Clean with the
leading `/` dropped; `!` makes it an exception; the LAST matching pattern wins; a pattern also
matches everything under a directory it matches; `*`/`?` never cross `/`, `**` crosses any number.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field


@dataclass
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern
    dirs: int


def _clean(p: str) -> str:
    p = posixpath.normpath(p) if p else "."
    while p.startswith("/"):
        p = p[1:]
    return p or "."


def compile_pattern(pattern: str) -> re.Pattern:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(.*/)?")     # **/ : zero or more directories
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:j]
                neg = body.startswith("^") or body.startswith("!")
                body = body[1:] if neg else body
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append("[" + ("^" if neg else "") + body + "]" if body else re.escape(pattern[i:j + 1]))
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.S)
    except re.error:
        return re.compile(re.escape(pattern) + "$")


@dataclass
class Matcher:
    patterns: list[Pattern] = field(default_factory=list)

    @property
    def has_exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, rel: str) -> bool:
        """Is the context-relative path `rel` ignored?"""
        rel = _clean(rel)
        parents = rel.split("/")
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            hit = bool(p.regex.match(rel))
            if not hit:
                # a pattern naming a directory also covers everything below it
                for k in range(1, len(parents)):
                    if p.regex.match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched


def parse(text: str) -> Matcher:
    pats = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excl = line.startswith("!")
        if excl:
            line = line[1:].strip()
            if not line:
                continue
        cleaned = _clean(line)
        pats.append(Pattern(line, excl, compile_pattern(cleaned), cleaned.count("/")))
    return Matcher(pats)


def load(context_dir: str) -> Matcher:
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return parse(f.read())
    except (FileNotFoundError, IsADirectoryError):
        return Matcher()
