"""A subset of Go templates, enough for docker's --format: {{.A.B}}, {{json .X}}, {{index .M "k"}},
{{lower .X}}, {{upper .X}}, {{join .L ","}}, {{.}}, and the `table` prefix."""
from __future__ import annotations

import json
import re

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


def _lookup(obj, path: str):
    if path in (".", ""):
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, dict):
            if part in cur:
                cur = cur[part]
            else:
                low = {k.lower(): k for k in cur}
                if part.lower() in low:
                    cur = cur[low[part.lower()]]
                else:
                    raise KeyError(f"can't evaluate field {part}")
        else:
            cur = getattr(cur, part)
    return cur


def _arg(tok: str, obj):
    if tok.startswith('"'):
        return json.loads(tok)
    if tok.startswith("."):
        return _lookup(obj, tok)
    if tok.isdigit():
        return int(tok)
    raise ValueError(f"function {tok!r} not defined")


def _str(v) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_str(x) for x in v) + "]"
    return str(v)


def _eval(expr: str, obj) -> str:
    toks = _TOKEN.findall(expr)
    if not toks:
        return ""
    fn, args = toks[0], toks[1:]
    if fn.startswith(".") or fn.startswith('"'):
        return _str(_arg(fn, obj))
    vals = [_arg(a, obj) for a in args]
    if fn == "json":
        return json.dumps(vals[0] if vals else obj)
    if fn == "index":
        cur = vals[0]
        for k in vals[1:]:
            cur = cur[k]
        return _str(cur)
    if fn == "lower":
        return _str(vals[0]).lower()
    if fn == "upper":
        return _str(vals[0]).upper()
    if fn == "join":
        return vals[1].join(_str(x) for x in (vals[0] or []))
    if fn == "len":
        return str(len(vals[0]))
    if fn == "println":
        return " ".join(_str(v) for v in vals) + "\n"
    raise ValueError(f'template: function "{fn}" not defined')


def render(template: str, obj) -> str:
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    try:
        return _ACTION.sub(lambda m: _eval(m.group(1), obj), template)
    except (KeyError, AttributeError, IndexError, TypeError) as e:
        from nsbox.runtime.errors import InvalidArgument
        raise InvalidArgument(f"template: executing: {e}") from None
    except ValueError as e:
        from nsbox.runtime.errors import InvalidArgument
        raise InvalidArgument(f"template: {e}") from None


IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "CreatedSince": "CREATED",
                 "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST"}


def table_headers(template: str, extra: dict | None = None) -> str:
    """'table {{.ID}}\t{{.Names}}' -> 'CONTAINER ID\tNAMES' (docker's header names)."""
    names = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
             "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
             "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
             "Pod": "POD", "PodName": "POD NAME", **(extra or {})}
    body = template.replace("\\t", "\t")
    return _ACTION.sub(lambda m: names.get(m.group(1).lstrip("."), m.group(1).lstrip(".").upper()), body)
