"""Dockerfile text -> a list of Instructions, following moby's parser (buildkit/frontend/dockerfile/parser).

Why not dockerfile-parse: it joins continuations and strips comments, but it honours the
`# escape=` directive only for continuations (not inside words), its own ARG/ENV substitution
differs from docker's (no `${VAR:+alt}`, no quote removal, values leak across stages), it keeps
no flags (`--from`, `--chown`) and it raises assorted exception types on malformed input. We need
per-instruction line numbers, flags and exact errors anyway, so this small lexer follows moby
directly; every failure is one InvalidArgument line ("Dockerfile parse error line N: ...").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nsbox.runtime.errors import InvalidArgument

KNOWN = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
         "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
JSON_FORM = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME", "HEALTHCHECK"}
FLAGS = {"ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"}, "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
         "FROM": {"platform"}, "RUN": {"mount", "network", "security"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"}}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    cmd: str                        # upper-case keyword
    rest: str                       # the text after the keyword and the flags (continuations joined)
    line: int                       # 1-based line of the keyword
    original: str                   # the whole instruction as written (for "Step N/M : ...")
    flags: dict[str, str] = field(default_factory=dict)
    json: list[str] | None = None   # exec/JSON form, when `rest` is a JSON array of strings


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"


def err(line: int, msg: str) -> InvalidArgument:
    return InvalidArgument(f"Dockerfile parse error line {line}: {msg}")


def parse(text: str) -> Dockerfile:
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    i = 0
    seen_directives: set[str] = set()
    # parser directives: only at the very top, before any comment, blank line or instruction
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip()) if lines[i].strip().startswith("#") else None
        if not m:
            break
        name, value = m.group(1).lower(), m.group(2)
        if name in seen_directives:
            raise err(i + 1, f"only one {name} parser directive can be used")
        seen_directives.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise err(i + 1, f"invalid escape token '{value}' does not match ` or \\")
            escape = value
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i
        i += 1
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        parts = [raw.lstrip()]
        while _continues(parts[-1], escape):
            parts[-1] = parts[-1].rstrip()[:-1]
            # moby drops comment and empty lines inside a continuation
            while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                i += 1
            if i >= len(lines):
                break               # a continuation at end of file
            parts.append(lines[i])
            i += 1
        joined = "".join(p for p in parts).strip()
        if not joined:
            continue
        out.append(_instruction(joined, start + 1, escape))
    return Dockerfile(out, escape)


def _continues(line: str, escape: str) -> bool:
    s = line.rstrip()
    if not s.endswith(escape):
        return False
    n = len(s) - len(s.rstrip(escape))
    return n % 2 == 1 if escape == "\\" else True


def _instruction(joined: str, line: int, escape: str) -> Instruction:
    m = re.match(r"(\S+)\s*(.*)\Z", joined, re.S)
    word, rest = m.group(1), m.group(2)
    cmd = word.upper()
    if cmd not in KNOWN:
        raise err(line, f"unknown instruction: {word}")
    flags: dict[str, str] = {}
    if cmd in FLAGS:
        while rest.startswith("--"):
            fm = re.match(r"--([A-Za-z0-9-]*)(=(\S*))?\s*(.*)\Z", rest, re.S)
            if not fm or not fm.group(1):
                raise err(line, f"{cmd}: invalid flag {rest.split()[0]!r}")
            name = fm.group(1)
            if name not in FLAGS[cmd]:
                raise err(line, f"unknown flag: --{name}")
            flags[name] = fm.group(3) if fm.group(2) else "true"
            rest = fm.group(4)
    rest = rest.strip()
    jform = None
    if cmd in JSON_FORM and rest.startswith("["):
        try:
            v = json.loads(rest)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            jform = v
    return Instruction(cmd, rest, line, joined, flags, jform)


def split_words(s: str, escape: str = "\\") -> list[str]:
    """moby's parseWords: split on whitespace outside quotes, keeping quotes and escapes in the words."""
    words: list[str] = []
    cur = []
    quote = ""
    esc = False
    for ch in s:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if ch == escape and quote != "'":
            cur.append(ch)
            esc = True
            continue
        if quote:
            if ch == quote:
                quote = ""
            cur.append(ch)
            continue
        if ch in "'\"":
            quote = ch
            cur.append(ch)
            continue
        if ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words
