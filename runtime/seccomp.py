"""seccomp profiles in docker's (and OCI's) JSON format: load, validate, resolve per container.

The model is docker's: an allow-list (seccomp_default.json, shipped with the package) whose
default action refuses everything not listed with EPERM, with argument filters (clone flags,
personality values, socket families) and rules that apply only with or without a capability.
`resolve` turns a profile plus the container's capabilities into the OCI form runc receives
(`linux.seccomp` in the spec: defaultAction, architectures, syscalls with args), as dockerd
does at create time; the spec keeps that form, so a container keeps the filter it was created
with. runtime/seccomp_bpf.py compiles it with libseccomp. Pure logic here: no libseccomp.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass

from nsbox.runtime.errors import InvalidArgument

DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")

ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"}
OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
          "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
          "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
          "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"}
# docker's includes/excludes name arches as Go does; only the native one matters for a rule
NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}
MAX_BYTES = 1 << 20


class ProfileError(InvalidArgument):
    """A profile that cannot be used: one short line, exit 125."""


@dataclass(frozen=True)
class Host:
    """What includes/excludes are matched against besides the capabilities."""
    goarch: str
    scmp_arch: str
    kernel: tuple[int, int]

    @staticmethod
    def native() -> "Host":
        u = os.uname()
        goarch, scmp = NATIVE.get(u.machine, ("amd64", "SCMP_ARCH_X86_64"))
        return Host(goarch, scmp, _version(u.release) or (0, 0))


def _version(text: str) -> tuple[int, int] | None:
    parts = text.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None


def _fail(where: str, why: str) -> ProfileError:
    return ProfileError(f"invalid seccomp profile {where[:120]}: {why[:160]}")


def load(source: str) -> dict:
    """Read and validate a profile file ("default" is the packaged one)."""
    path = DEFAULT_PROFILE if source == "default" else source
    try:
        # O_NONBLOCK: a FIFO given by mistake must not hang the command
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _fail(source, "not a regular file")
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ProfileError(f"opening seccomp profile {source[:120]} failed: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise _fail(source, "larger than 1 MiB")
    return parse(data, source)


def parse(data: bytes | str, where: str = "profile") -> dict:
    try:
        prof = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(where, f"not JSON ({str(e).splitlines()[0]})") from None
    validate(prof, where)
    return prof


def _strings(value, what: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _fail(where, f"{what} must be a list of strings")
    return value


def _errno(value, what: str, where: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 4096):
        raise _fail(where, f"{what} must be an errno number")


def validate(prof, where: str = "profile") -> None:
    if not isinstance(prof, dict):
        raise _fail(where, "not a JSON object")
    if prof.get("defaultAction") not in ACTIONS:
        raise _fail(where, f"unknown defaultAction {str(prof.get('defaultAction'))[:40]!r}")
    _errno(prof.get("defaultErrnoRet"), "defaultErrnoRet", where)
    for a in _strings(prof.get("architectures"), "architectures", where):
        if a not in ARCHES:
            raise _fail(where, f"unknown architecture {a[:40]!r}")
    arch_map = prof.get("archMap") or []
    if not isinstance(arch_map, list) or not all(isinstance(m, dict) for m in arch_map):
        raise _fail(where, "archMap must be a list of objects")
    for m in arch_map:
        for a in [m.get("architecture")] + _strings(m.get("subArchitectures"), "subArchitectures", where):
            if a not in ARCHES:
                raise _fail(where, f"unknown architecture {str(a)[:40]!r}")
    calls = prof.get("syscalls") or []
    if not isinstance(calls, list):
        raise _fail(where, "syscalls must be a list")
    for i, call in enumerate(calls):
        _validate_call(call, f"syscalls[{i}]", where)


def _validate_call(call, at: str, where: str) -> None:
    if not isinstance(call, dict):
        raise _fail(where, f"{at} is not an object")
    names = _strings(call.get("names"), f"{at}.names", where)
    if "name" in call and not isinstance(call["name"], str):
        raise _fail(where, f"{at}.name must be a string")
    if not names and not call.get("name"):
        raise _fail(where, f"{at} names no syscall")
    if call.get("action") not in ACTIONS:
        raise _fail(where, f"{at} has unknown action {str(call.get('action'))[:40]!r}")
    _errno(call.get("errnoRet"), f"{at}.errnoRet", where)
    args = call.get("args") or []
    if not isinstance(args, list) or len(args) > 6:
        raise _fail(where, f"{at}.args must be a list of at most 6 conditions")
    for a in args:
        if not isinstance(a, dict):
            raise _fail(where, f"{at}.args holds a non-object")
        idx = a.get("index")
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= 5:
            raise _fail(where, f"{at}.args index must be 0..5")
        for k in ("value", "valueTwo"):
            v = a.get(k, 0)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise _fail(where, f"{at}.args {k} must be an unsigned 64-bit number")
        if a.get("op") not in OPS:
            raise _fail(where, f"{at}.args has unknown op {str(a.get('op'))[:40]!r}")
    for key in ("includes", "excludes"):
        cond = call.get(key) or {}
        if not isinstance(cond, dict):
            raise _fail(where, f"{at}.{key} must be an object")
        _strings(cond.get("caps"), f"{at}.{key}.caps", where)
        _strings(cond.get("arches"), f"{at}.{key}.arches", where)
        mk = cond.get("minKernel")
        if mk is not None and (not isinstance(mk, str) or _version(mk) is None):
            raise _fail(where, f"{at}.{key}.minKernel must look like 4.8")


def _architectures(prof: dict, host: Host) -> list[str]:
    for m in prof.get("archMap") or []:
        if m.get("architecture") == host.scmp_arch:
            return [host.scmp_arch] + list(m.get("subArchitectures") or [])
    return list(prof.get("architectures") or []) or [host.scmp_arch]


def _applies(call: dict, caps: set[str], host: Host) -> bool:
    """docker's rule: every included cap present, the native arch included, no excluded cap or arch."""
    inc, exc = call.get("includes") or {}, call.get("excludes") or {}
    if any(_cap(c) in caps for c in exc.get("caps") or []) or host.goarch in (exc.get("arches") or []):
        return False
    if inc.get("arches") and host.goarch not in inc["arches"]:
        return False
    if not all(_cap(c) in caps for c in inc.get("caps") or []):
        return False
    if inc.get("minKernel") and host.kernel < (_version(inc["minKernel"]) or (0, 0)):
        return False
    return True


def _cap(name: str) -> str:
    return name if name.startswith("CAP_") else "CAP_" + name


def resolve(prof: dict, caps: list[str], host: Host | None = None) -> dict:
    """The OCI `linux.seccomp` for a container with these bounding capabilities."""
    host = host or Host.native()
    have = {_cap(c) for c in caps}
    out: dict = {"defaultAction": prof["defaultAction"], "architectures": _architectures(prof, host),
                 "syscalls": []}
    if prof.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = prof["defaultErrnoRet"]
    for call in prof.get("syscalls") or []:
        if not _applies(call, have, host):
            continue
        rule = {"names": list(call.get("names") or [call["name"]]), "action": call["action"]}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [{"index": a["index"], "value": a.get("value", 0), "valueTwo": a.get("valueTwo", 0),
                             "op": a["op"]} for a in call["args"]]
        out["syscalls"].append(rule)
    return out


def for_container(source: str | bool, caps: list[str]) -> dict | None:
    """source: True or "default" for the packaged profile, False for unconfined, else a file path."""
    if source is False:
        return None
    return resolve(load("default" if source is True else source), caps)
