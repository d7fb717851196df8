"""cgroup v2 device allowlist: a hand-assembled BPF_PROG_TYPE_CGROUP_DEVICE program, loaded and
attached with bpf(2) through a private cffi binding (v2 has no devices.allow files).

Semantics match v1 devices.allow/deny written in order: a type-'a' rule resets the default, later
rules override earlier ones. So the program checks the rules after the last 'a' rule newest first,
returns on the first match, and falls through to the default.
"""
from __future__ import annotations

import os
import struct
from typing import Sequence

from nsbox.runtime.cgroups.resources import DeviceRule

SYS_bpf = 321                      # x86_64
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
DEV_BLOCK, DEV_CHAR = 1, 2                 # bpf_cgroup_dev_ctx.access_type low 16 bits
ACC = {"m": 1, "r": 2, "w": 4}             # ... high 16 bits

# opcodes
LDXW, AND64_K, RSH64_K, MOV64_K, MOV64_X, JNE_K, EXIT = 0x61, 0x57, 0x77, 0xb7, 0xbf, 0x55, 0x95
R0, R1, R2, R3, R4, R5 = range(6)

_ffi = None


def _lib():
    """Lazily build the one-declaration cffi binding (only v2 hosts ever load it)."""
    global _ffi  # cache of an immutable dlopen handle, not mutable program state
    if _ffi is None:
        from cffi import FFI
        ffi = FFI()
        ffi.cdef("long syscall(long number, ...);")
        _ffi = (ffi, ffi.dlopen(None))
    return _ffi


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions returning rule.allow if the request matches; else jump past the block."""
    # each step is either a plain instruction or ("jne", reg, imm): leave the block if reg != imm
    steps: list[bytes | tuple[int, int]] = []
    acc = sum(ACC[c] for c in set(rule.access) if c in ACC)
    if acc != 7:  # requested access must be a subset of the rule's: (r3 & ~acc) == 0
        steps += [insn(MOV64_X, R1, R3), insn(AND64_K, R1, imm=~acc), (R1, 0)]
    if rule.type in ("b", "c"):
        steps.append((R2, DEV_BLOCK if rule.type == "b" else DEV_CHAR))
    if rule.major is not None:
        steps.append((R4, rule.major))
    if rule.minor is not None:
        steps.append((R5, rule.minor))
    steps += [insn(MOV64_K, R0, imm=1 if rule.allow else 0), insn(EXIT)]
    n = len(steps)
    return [s if isinstance(s, bytes) else insn(JNE_K, s[0], off=n - i - 1, imm=s[1])
            for i, s in enumerate(steps)]


def assemble(rules: Sequence[DeviceRule]) -> bytes:
    default = True  # an empty v1 devices cgroup allows everything
    start = 0
    for i, r in enumerate(rules):
        if r.type == "a":
            default, start = r.allow, i + 1
    prog = [
        insn(LDXW, R2, R1, 0),        # r2 = ctx->access_type
        insn(AND64_K, R2, imm=0xFFFF),  # device type
        insn(LDXW, R3, R1, 0),
        insn(RSH64_K, R3, imm=16),    # access bits
        insn(LDXW, R4, R1, 4),        # major
        insn(LDXW, R5, R1, 8),        # minor
    ]
    for r in reversed(list(rules[start:])):
        prog += _rule_block(r)
    prog += [insn(MOV64_K, R0, imm=1 if default else 0), insn(EXIT)]
    return b"".join(prog)


def _bpf(cmd: int, attr: bytes) -> int:
    ffi, lib = _lib()
    buf = ffi.new("unsigned char[]", attr)
    rc = lib.syscall(SYS_bpf, ffi.cast("int", cmd), buf, ffi.cast("unsigned int", len(attr)))
    if rc < 0:
        e = ffi.errno
        raise OSError(e, os.strerror(e))
    return rc


def load(rules: Sequence[DeviceRule]) -> int:
    """Load the program; returns its fd. On verifier rejection the log is in the error."""
    ffi, _ = _lib()
    code = assemble(rules)
    insns = ffi.new("unsigned char[]", code)
    lic = ffi.new("char[]", b"Apache")
    addr = lambda p: int(ffi.cast("uintptr_t", p))  # noqa: E731
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, addr(insns), addr(lic),
                       0, 0, 0, 0, 0, b"nsbox_devices").ljust(128, b"\0")
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as first:
        log = ffi.new("char[]", 65536)
        attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, addr(insns),
                           addr(lic), 1, 65536, addr(log), 0, 0, b"nsbox_devices").ljust(128, b"\0")
        try:
            return _bpf(BPF_PROG_LOAD, attr)
        except OSError:
            msg = ffi.string(log).decode(errors="replace").strip().replace("\n", "; ")
            raise OSError(first.errno, f"BPF_PROG_LOAD: {first.strerror}: {msg[-300:]}") from None


def attach_device_filter(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Load and attach to a cgroup2 directory. The cgroup keeps the program alive, so no fd is kept."""
    prog = load(rules)
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
             .ljust(128, b"\0"))
    finally:
        os.close(cg)
        os.close(prog)
