"""Pure per-instruction logic: argument parsing and image-config edits (no filesystem, no store)."""
from __future__ import annotations

import re

from nsbox.image.build.parser import Instruction, err, split_words
from nsbox.image.build.substitute import process_word, process_words
from nsbox.runtime.errors import InvalidArgument

DEFAULT_SHELL = ["/bin/sh", "-c"]


def sub(word: str, env: dict, escape: str, line: int) -> str:
    try:
        return process_word(word, env, escape)
    except InvalidArgument as e:
        raise err(line, str(e)) from None


def subs(word: str, env: dict, escape: str, line: int) -> list[str]:
    try:
        return process_words(word, env, escape)
    except InvalidArgument as e:
        raise err(line, str(e)) from None


def name_values(ins: Instruction, env: dict, escape: str, allow_legacy: bool = True) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"` or the legacy `k v with spaces`."""
    words = split_words(ins.rest, escape)
    if not words:
        raise err(ins.line, f"{ins.cmd} requires at least one argument")
    if "=" not in words[0]:
        if not allow_legacy or len(words) < 2:
            raise err(ins.line, f"{ins.cmd} must have two arguments")
        key = words[0]
        value = ins.rest[len(ins.rest) - len(ins.rest.lstrip()):].lstrip()[len(key):].strip()
        return [(sub(key, env, escape, ins.line), sub(value, env, escape, ins.line))]
    out = []
    for w in words:
        if "=" not in w:
            raise err(ins.line, f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        k, _, v = w.partition("=")
        k = sub(k, env, escape, ins.line)
        if not k:
            raise err(ins.line, f"{ins.cmd} names can not be blank")
        out.append((k, sub(v, env, escape, ins.line)))
    return out


def arg_decls(ins: Instruction, env: dict, escape: str) -> list[tuple[str, str | None]]:
    words = split_words(ins.rest, escape)
    if not words:
        raise err(ins.line, "ARG requires at least one argument")
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not k or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", k):
            raise err(ins.line, f"invalid ARG name {k!r}")
        out.append((k, sub(v, env, escape, ins.line) if eq else None))
    return out


def command_form(ins: Instruction, shell: list[str]) -> list[str]:
    """RUN/CMD/ENTRYPOINT: exec form as is, shell form through SHELL."""
    if ins.json is not None:
        return list(ins.json)
    if not ins.rest:
        raise err(ins.line, f"{ins.cmd} requires at least one argument")
    return list(shell) + [ins.rest]


def parse_shell(ins: Instruction) -> list[str]:
    if ins.json is None or not ins.json:
        raise err(ins.line, "SHELL requires the arguments to be in JSON form")
    return list(ins.json)


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def duration(value: str, line: int) -> int:
    pos, total = 0, 0.0
    if value == "0":
        return 0
    for m in _DUR.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise err(line, f"time: invalid duration {value!r}")
    return int(total)


def healthcheck(ins: Instruction, shell: list[str]) -> dict:
    words = ins.rest.split(None, 1)
    if not words:
        raise err(ins.line, "HEALTHCHECK requires an argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1 or ins.flags:
            raise err(ins.line, "HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise err(ins.line, f"Unknown type \"{words[0]}\" in HEALTHCHECK (try CMD)")
    rest = words[1].strip() if len(words) > 1 else ""
    if not rest:
        raise err(ins.line, "Missing command after HEALTHCHECK CMD")
    import json
    test = None
    if rest.startswith("["):
        try:
            v = json.loads(rest)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                test = ["CMD"] + v
        except ValueError:
            pass
    if test is None:
        test = ["CMD-SHELL", rest]
    hc: dict = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if flag in ins.flags:
            hc[key] = duration(ins.flags[flag], ins.line)
    if "retries" in ins.flags:
        if not ins.flags["retries"].isdigit():
            raise err(ins.line, f"invalid --retries value {ins.flags['retries']!r}")
        hc["Retries"] = int(ins.flags["retries"])
    return hc


_PORT = re.compile(r"^\d{1,5}(-\d{1,5})?(/(tcp|udp|sctp))?$", re.I)


def ports(words: list[str], line: int) -> list[str]:
    out = []
    for p in words:
        if not _PORT.match(p):
            raise err(line, f"invalid containerPort: {p}")
        out.append(p.lower() if "/" in p else p + "/tcp")
    return out


def env_list_set(env: list[str], key: str, value: str) -> list[str]:
    out = [e for e in env if e.split("=", 1)[0] != key]
    idx = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == key), None)
    if idx is None:
        return out + [f"{key}={value}"]
    new = list(env)
    new[idx] = f"{key}={value}"
    return new


def env_dict(env: list[str]) -> dict[str, str]:
    d = {}
    for e in env or []:
        k, _, v = e.partition("=")
        d[k] = v
    return d
