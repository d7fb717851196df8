"""The default seccomp filter: the syscalls docker's default profile refuses, as classic BPF.

Why a deny-list and not docker's ~350-entry allow-list: it blocks the same dangerous calls
(keyrings, kernel modules, kexec, clocks, mounts and namespaces without CAP_SYS_ADMIN,
userfaultfd, perf, bpf, ...) with a program small enough to read, and a new harmless syscall in
a newer libc never breaks a container. Why not libseccomp: the Python binding (pyseccomp) is
not packaged in Debian 12 and the program below is 50 instructions.

Like docker, a syscall guarded by a capability is refused only when the container lacks that
capability, and the refusal is EPERM. Only x86_64 calls pass the arch check: the i386 and x32
tables number syscalls differently, so a deny-list written in x86_64 numbers would not hold
there; they get EPERM too.
"""
from __future__ import annotations

import errno

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
RET_K = 0x06

# x86_64 numbers. None: refused whatever the capabilities; a name: allowed with that capability.
DENY: dict[str, tuple[int, str | None]] = {
    "keyctl": (250, None), "add_key": (248, None), "request_key": (249, None),
    "userfaultfd": (323, None), "kexec_load": (246, "SYS_BOOT"), "kexec_file_load": (320, "SYS_BOOT"),
    "uselib": (134, None), "ustat": (136, None), "sysfs": (139, None), "_sysctl": (156, None),
    "nfsservctl": (180, None), "get_kernel_syms": (177, None), "query_module": (178, None),
    "create_module": (174, None), "lookup_dcookie": (212, "SYS_ADMIN"),
    "open_by_handle_at": (304, "DAC_READ_SEARCH"), "name_to_handle_at": (303, "SYS_ADMIN"),
    "perf_event_open": (298, "PERFMON"), "bpf": (321, "SYS_ADMIN"), "fanotify_init": (300, "SYS_ADMIN"),
    "mount": (165, "SYS_ADMIN"), "umount2": (166, "SYS_ADMIN"), "pivot_root": (155, "SYS_ADMIN"),
    "unshare": (272, "SYS_ADMIN"), "setns": (308, "SYS_ADMIN"), "quotactl": (179, "SYS_ADMIN"),
    "swapon": (167, "SYS_ADMIN"), "swapoff": (168, "SYS_ADMIN"), "reboot": (169, "SYS_BOOT"),
    "acct": (163, "SYS_PACCT"), "settimeofday": (164, "SYS_TIME"), "clock_settime": (227, "SYS_TIME"),
    "clock_adjtime": (305, "SYS_TIME"), "init_module": (175, "SYS_MODULE"),
    "finit_module": (313, "SYS_MODULE"), "delete_module": (176, "SYS_MODULE"),
    "iopl": (172, "SYS_RAWIO"), "ioperm": (173, "SYS_RAWIO"), "syslog": (103, "SYSLOG"),
    "kcmp": (312, "SYS_PTRACE"), "process_vm_readv": (310, "SYS_PTRACE"),
    "process_vm_writev": (311, "SYS_PTRACE"), "vhangup": (153, "SYS_TTY_CONFIG"),
    "move_pages": (279, "SYS_NICE"), "mbind": (237, "SYS_NICE"), "set_mempolicy": (238, "SYS_NICE"),
    "get_mempolicy": (239, "SYS_NICE"), "fsopen": (430, "SYS_ADMIN"), "fsconfig": (431, "SYS_ADMIN"),
    "fsmount": (432, "SYS_ADMIN"), "move_mount": (429, "SYS_ADMIN"), "fspick": (433, "SYS_ADMIN"),
    "open_tree": (428, "SYS_ADMIN"), "mount_setattr": (442, "SYS_ADMIN"),
}


def denied(caps: list[str]) -> list[int]:
    have = {c[4:] if c.startswith("CAP_") else c for c in caps}
    return sorted(nr for nr, cap in DENY.values() if cap is None or cap not in have)


def program(caps: list[str]) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    eperm = RET_ERRNO | errno.EPERM
    nrs = denied(caps)
    n = len(nrs)
    prog = [
        (LD_W_ABS, 0, 0, 4),                    # seccomp_data.arch
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, eperm),
        (LD_W_ABS, 0, 0, 0),                    # seccomp_data.nr
        (JGE_K, n + 1, 0, X32_SYSCALL_BIT),     # x32 ABI -> deny
    ]
    for i, nr in enumerate(nrs):
        # the deny return sits after the n compares and the allow: n - i jumps ahead
        prog.append((JEQ_K, n - i, 0, nr))
    prog.append((RET_K, 0, 0, RET_ALLOW))
    prog.append((RET_K, 0, 0, eperm))
    return prog


def evaluate(prog: list[tuple[int, int, int, int]], arch: int, nr: int) -> int:
    """A tiny interpreter for the instructions above, so the program is unit tested."""
    acc, pc = 0, 0
    data = {0: nr, 4: arch}
    while True:
        code, jt, jf, k = prog[pc]
        if code == LD_W_ABS:
            acc = data[k]
            pc += 1
        elif code == JEQ_K:
            pc += 1 + (jt if acc == k else jf)
        elif code == JGE_K:
            pc += 1 + (jt if acc >= k else jf)
        elif code == RET_K:
            return k
        else:
            raise ValueError(f"bad instruction {code:#x}")
