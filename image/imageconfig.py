"""Docker/OCI image-config documents: new ones for import, child ones for commit, `--change` edits."""
from __future__ import annotations

import copy
import platform
import shlex
from datetime import datetime, timezone

from nsbox.runtime.errors import InvalidArgument

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def arch() -> str:
    m = platform.machine()
    return _ARCH.get(m, m)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_container_config() -> dict:
    return {"Env": [DEFAULT_PATH], "Cmd": None, "Entrypoint": None, "WorkingDir": "", "User": "",
            "ExposedPorts": None, "Volumes": None, "Labels": None, "StopSignal": "", "Healthcheck": None}


def new_config(diff_ids: list[str], *, created: str | None = None, base: dict | None = None,
               comment: str = "", created_by: str = "", changes: list[str] = ()) -> dict:
    created = created or now()
    cc = empty_container_config()
    if base:
        cc.update(base)
    cc = apply_changes(cc, changes)
    h = {"created": created}
    if created_by:
        h["created_by"] = created_by
    if comment:
        h["comment"] = comment
    return {"architecture": arch(), "os": "linux", "created": created, "config": _clean(cc),
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}, "history": [h]}


def child_config(parent: dict, diff_id: str, *, changes: list[str] = (), comment: str = "", author: str = "",
                 container_id: str = "", container_config: dict | None = None) -> dict:
    cfg = copy.deepcopy(parent)
    created = now()
    cc = empty_container_config()
    cc.update(parent.get("config") or {})
    if container_config:
        cc.update(container_config)
    cfg["config"] = _clean(apply_changes(cc, changes))
    cfg["created"] = created
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = list(cfg["rootfs"].get("diff_ids", [])) + [diff_id]
    h = {"created": created}
    if author:
        h["author"] = author
        cfg["author"] = author
    if comment:
        h["comment"] = comment
    cfg["history"] = list(cfg.get("history") or []) + [h]
    if container_id:
        cfg["container"] = container_id
    cfg.pop("id", None)
    return cfg


def _clean(cc: dict) -> dict:
    return {k: v for k, v in cc.items() if v not in (None, "", [], {})}


def _json_or_shell(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        import json
        try:
            v = json.loads(rest)
        except ValueError:
            raise InvalidArgument(f"invalid JSON in change {rest!r}") from None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise InvalidArgument(f"expected a JSON array of strings: {rest!r}")
        return v
    return ["/bin/sh", "-c", rest]


def apply_changes(cc: dict, changes) -> dict:
    """Dockerfile instructions allowed by `docker import/commit --change`."""
    cc = dict(cc)
    for ch in changes or ():
        instr, _, rest = ch.strip().partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "CMD":
            cc["Cmd"] = _json_or_shell(rest)
        elif instr == "ENTRYPOINT":
            cc["Entrypoint"] = _json_or_shell(rest)
        elif instr == "ENV":
            pairs = []
            if "=" in rest.split(" ", 1)[0]:
                for tok in shlex.split(rest):
                    k, _, v = tok.partition("=")
                    pairs.append((k, v))
            else:
                k, _, v = rest.partition(" ")
                pairs.append((k, v.strip()))
            env = [e for e in (cc.get("Env") or [])]
            for k, v in pairs:
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cc["Env"] = env
        elif instr == "WORKDIR":
            cc["WorkingDir"] = rest
        elif instr == "USER":
            cc["User"] = rest
        elif instr == "EXPOSE":
            ports = dict(cc.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cc["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(cc.get("Volumes") or {})
            for v in (_json_or_shell(rest) if rest.startswith("[") else rest.split()):
                vols[v] = {}
            cc["Volumes"] = vols
        elif instr == "LABEL":
            labels = dict(cc.get("Labels") or {})
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                labels[k] = v
            cc["Labels"] = labels
        elif instr == "STOPSIGNAL":
            cc["StopSignal"] = rest
        else:
            raise InvalidArgument(f"{instr} is not a valid change command")
    return cc


# Go's field order in the OCI image-spec structs: containers/image re-marshals configs in this order
# when it converts formats (podman save --format oci-archive), so writing it the same way keeps the
# config digest, i.e. the image id, stable across tools.
_TOP_ORDER = ("created", "author", "architecture", "variant", "os", "os.version", "os.features", "config",
              "rootfs", "history")
_CC_ORDER = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
             "ArgsEscaped")
_ROOTFS_ORDER = ("type", "diff_ids")
_HIST_ORDER = ("created", "created_by", "author", "comment", "empty_layer")


def _ordered(d: dict, order) -> dict:
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def serialize(cfg: dict) -> bytes:
    """Canonical bytes of a config (compact, Go field order, Go's HTML-safe escaping)."""
    import json
    doc = _ordered(cfg, _TOP_ORDER)
    if isinstance(doc.get("config"), dict):
        doc["config"] = _ordered(doc["config"], _CC_ORDER)
    if isinstance(doc.get("rootfs"), dict):
        doc["rootfs"] = _ordered(doc["rootfs"], _ROOTFS_ORDER)
    if isinstance(doc.get("history"), list):
        doc["history"] = [_ordered(h, _HIST_ORDER) if isinstance(h, dict) else h for h in doc["history"]]
    s = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()
