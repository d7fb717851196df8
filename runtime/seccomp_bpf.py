"""Compile an OCI `linux.seccomp` into a BPF program with libseccomp, and cache the result.

libseccomp (Debian's libseccomp2, through cffi's ABI mode) does what a hand-written program
got wrong: x86_64, i386 and x32 each get their own syscall numbers and arch checks, argument
comparisons on 64-bit values, and a balanced tree instead of a 400-compare chain.

Why a cache: building and exporting the default profile costs ~20 ms of libseccomp work on this
machine, paid on every container start and every exec otherwise. The exported program depends
only on the resolved profile (capabilities and arches are already folded in by seccomp.resolve)
and on the libseccomp version, so it is kept under the runroot (tmpfs, gone at reboot) by that
hash and loaded with seccomp(SECCOMP_SET_MODE_FILTER) directly; the kernel checks the program
again when it is loaded.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os

from nsbox.runtime._nsffi import ffi
from nsbox.runtime.seccomp import ProfileError

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ATTR_ACT_BADARCH = 2
ATTR_CTL_OPTIMIZE = 8
NR_SCMP_ERROR = -1
BPF_MAXINSNS = 4096
FORMAT = "nsbox-seccomp-1"

_lib = None


def _libseccomp():
    global _lib  # one dlopen handle per process, immutable once loaded
    if _lib is None:
        try:
            _lib = ffi.dlopen("libseccomp.so.2")
        except OSError as e:
            raise ProfileError(f"seccomp: libseccomp.so.2 cannot be loaded ({e}); install libseccomp2") from None
    return _lib


def _action(name: str, errno_ret: int | None) -> int:
    ret = (errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF  # runc's default is EPERM too
    return {
        "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
        "SCMP_ACT_ERRNO": ACT_ERRNO | ret, "SCMP_ACT_TRACE": ACT_TRACE | ret,
        "SCMP_ACT_LOG": ACT_LOG, "SCMP_ACT_ALLOW": ACT_ALLOW,
    }[name]


def compile_bpf(oci: dict) -> bytes:
    """The classic-BPF program (struct sock_filter array) libseccomp builds for this profile."""
    lib = _libseccomp()
    default_errno = oci.get("defaultErrnoRet", errno.EPERM)
    default = _action(oci["defaultAction"], oci.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise ProfileError("seccomp: libseccomp refused the default action")
    try:
        for arch in oci.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise ProfileError(f"seccomp: libseccomp does not know architecture {arch}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc not in (0, -errno.EEXIST):
                raise ProfileError(f"seccomp: adding architecture {arch}: {os.strerror(-rc)}")
        # a caller from an arch the profile does not list gets the default errno, not a kill
        lib.seccomp_attr_set(ctx, ATTR_ACT_BADARCH, ACT_ERRNO | (default_errno & 0xFFFF))
        lib.seccomp_attr_set(ctx, ATTR_CTL_OPTIMIZE, 2)  # binary tree: fewer compares per syscall
        for rule in oci.get("syscalls") or []:
            _add_rule(lib, ctx, rule, default)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(lib, ctx, rule: dict, default: int) -> None:
    action = _action(rule["action"], rule.get("errnoRet"))
    if action == default:
        return  # libseccomp refuses such rules (EACCES); they change nothing
    args = rule.get("args") or []
    # libseccomp wants one comparison per argument in a rule; several on the same argument mean
    # "any of them" in docker's profiles (runc adds one rule each), so split those
    if len({a["index"] for a in args}) < len(args):
        groups = [[a] for a in args]
    else:
        groups = [args]
    for name in rule["names"]:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == NR_SCMP_ERROR:
            continue  # a syscall this libseccomp (or arch) does not know, as runc skips it
        for group in groups:
            cmp = ffi.new("struct scmp_arg_cmp[]", max(1, len(group)))
            for i, a in enumerate(group):
                cmp[i].arg, cmp[i].op = a["index"], OPS[a["op"]]
                cmp[i].datum_a, cmp[i].datum_b = a.get("value", 0), a.get("valueTwo", 0)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), cmp)
            if rc < 0 and rc not in (-errno.EACCES, -errno.EEXIST):
                raise ProfileError(f"seccomp: rule for {name[:40]}: {os.strerror(-rc)}")


def _export(lib, ctx) -> bytes:
    fd = os.memfd_create("nsbox-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise ProfileError(f"seccomp: exporting the filter: {os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _key(oci: dict) -> str:
    v = _libseccomp().seccomp_version()
    text = json.dumps(oci, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{FORMAT} {v.major}.{v.minor}.{v.micro}\n{text}".encode()).hexdigest()


def _valid(data: bytes) -> bool:
    return 0 < len(data) <= BPF_MAXINSNS * 8 and len(data) % 8 == 0


def program(oci: dict, runroot: str | None) -> bytes:
    """The compiled filter, from <runroot>/seccomp/<hash>.bpf when another start made it already."""
    if not runroot:
        data = compile_bpf(oci)
    else:
        d = os.path.join(runroot, "seccomp")
        path = os.path.join(d, _key(oci) + ".bpf")
        try:
            with open(path, "rb") as f:
                data = f.read(BPF_MAXINSNS * 8 + 1)
            if _valid(data):
                return data
        except OSError:
            pass
        data = compile_bpf(oci)
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)  # atomic: a concurrent start reads the old or the new file, whole
        except OSError:
            pass  # no cache is slower, not wrong
    if not _valid(data):
        raise ProfileError(f"seccomp: the compiled filter has {len(data) // 8} instructions "
                           f"(the kernel takes at most {BPF_MAXINSNS})")
    return data


def for_spec(spec: dict, runroot: str | None) -> bytes | None:
    """A container's compiled filter, or None when it runs unconfined."""
    linux = spec.get("linux", {})
    if not linux.get("seccomp"):
        return None
    oci = linux["seccomp"]
    if not isinstance(oci, dict):  # a container created before profiles: the default one, as then
        from nsbox.runtime.seccomp import for_container
        oci = for_container(True, (spec["process"].get("capabilities") or {}).get("bounding", []))
    return program(oci, runroot)
