"""docker's resource-flag parsers, same accepted syntax and one-line errors (InvalidArgument).

Messages follow docker: `invalid argument "X" for "--flag" flag: <reason>` for syntax, and the
daemon's wording ("Minimum memory limit allowed is 6MB", ...) for range/combination checks.
"""
from __future__ import annotations

import json
import os
import re
import stat
from decimal import Decimal, InvalidOperation
from typing import Any

from nsbox.runtime.cgroups.resources import Resources, ThrottleDevice, WeightDevice, default_device_rules
from nsbox.runtime.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024          # docker's linuxMinMemory
CPU_PERIOD = 100000                   # what --cpus converts against
MIN_SHARES, MAX_SHARES = 2, 262144
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?(?:(?<=[kmgtp])i)?(b)?", re.I | re.ASCII)
_INT = re.compile(r"[-+]?\d+", re.ASCII)
_DEC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)", re.ASCII)
INT64_MAX = (1 << 63) - 1


def q(s: Any) -> str:
    """Go's %q: quoted and escaped, so a message never spans lines."""
    return json.dumps(str(s), ensure_ascii=True)


def _bad(value: Any, flag: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid argument {q(value)} for {q(flag)} flag: {why}")


def _int(value: str | int, flag: str, lo: int = -INT64_MAX - 1, hi: int = INT64_MAX) -> int:
    if isinstance(value, bool):
        raise _bad(value, flag, "invalid syntax")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _INT.fullmatch(value):
        n = int(value)
    else:
        raise _bad(value, flag, f"strconv.ParseInt: parsing {q(value)}: invalid syntax")
    if not lo <= n <= hi:
        raise _bad(value, flag, "value out of range")
    return n


# ---- sizes ----

def ram_in_bytes(value: str, flag: str = "--memory") -> int:
    """go-units RAMInBytes: '512m', '1.5g', '1 GiB', '100' (bytes); k=1024, case-insensitive."""
    if not isinstance(value, str):
        value = str(value)
    m = _SIZE.fullmatch(value)
    if not m:
        raise _bad(value, flag, f"invalid size: '{q(value)[1:-1]}'")
    size = Decimal(m.group(1)) * (_UNITS[m.group(2).lower()] if m.group(2) else 1)
    n = int(size)
    if n > INT64_MAX:
        raise _bad(value, flag, "value out of range")
    return n


def memory(value: str, flag: str = "--memory") -> int:
    return ram_in_bytes(value, flag)


def memory_swap(value: str, flag: str = "--memory-swap") -> int:
    """-1 = unlimited swap; otherwise a size (memory + swap total)."""
    if str(value) == "-1":
        return -1
    return ram_in_bytes(value, flag)


# ---- cpu ----

def cpus(value: str, flag: str = "--cpus", ncpu: int | None = None) -> tuple[int, int]:
    """--cpus 1.5 -> (quota, period) = (150000, 100000); docker's NanoCPUs rules and range."""
    s = str(value)
    if not _DEC.fullmatch(s):
        raise _bad(value, flag, f"failed to parse {q(s)[1:-1]} as a rational number")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise _bad(value, flag, f"failed to parse {q(s)[1:-1]} as a rational number") from None
    nano = d * 1_000_000_000
    if nano != nano.to_integral_value():
        raise _bad(value, flag, "value is too precise")
    nano_i = int(nano)
    ncpu = ncpu or os.cpu_count() or 1
    if nano_i == 0:
        return (0, 0)
    if nano_i < 10_000_000 or nano_i > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    return (nano_i * CPU_PERIOD // 1_000_000_000, CPU_PERIOD)


def cpu_shares(value: str | int, flag: str = "--cpu-shares") -> tuple[int, list[str]]:
    """0 = default; outside [2, 262144] is clamped with a warning, like the docker daemon."""
    n = _int(value, flag)
    if n < 0:
        raise InvalidArgument(f"invalid argument {q(value)} for {q(flag)} flag: shares must be >= 0")
    if n == 0:
        return 0, []
    if n < MIN_SHARES:
        return MIN_SHARES, [f"Your kernel does not support CPU shares below {MIN_SHARES}; set to {MIN_SHARES}"]
    if n > MAX_SHARES:
        return MAX_SHARES, [f"Your kernel does not support CPU shares above {MAX_SHARES}; set to {MAX_SHARES}"]
    return n, []


def cpu_period(value: str | int, flag: str = "--cpu-period") -> int:
    n = _int(value, flag)
    if n != 0 and not 1000 <= n <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)")
    return n


def cpu_quota(value: str | int, flag: str = "--cpu-quota") -> int:
    n = _int(value, flag)
    if 0 < n < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    return n


def parse_uint_list(value: str) -> set[int]:
    """'0-2,5' -> {0,1,2,5}; raises ValueError on bad syntax (docker's parsers.ParseUintList)."""
    out: set[int] = set()
    if value == "":
        return out
    for part in value.split(","):
        if re.fullmatch(r"\d+", part, re.ASCII):
            out.add(int(part))
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part, re.ASCII)
        if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) - int(m.group(1)) > 1 << 16:
            raise ValueError(part)
        out.update(range(int(m.group(1)), int(m.group(2)) + 1))
    return out


def _online(path: str, fallback: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip() or fallback
    except OSError:
        return fallback


def available_cpus() -> str:
    for p in ("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "/sys/fs/cgroup/cpuset.cpus.effective"):
        if os.path.exists(p):
            return _online(p, "0")
    return _online("/sys/devices/system/cpu/online", f"0-{(os.cpu_count() or 1) - 1}")


def available_mems() -> str:
    for p in ("/sys/fs/cgroup/cpuset/cpuset.effective_mems", "/sys/fs/cgroup/cpuset.mems.effective"):
        if os.path.exists(p):
            return _online(p, "0")
    return _online("/sys/devices/system/node/online", "0")


def cpuset(value: str, kind: str = "cpus", available: str | None = None) -> str:
    """--cpuset-cpus / --cpuset-mems: list syntax and availability on this machine."""
    what = "cpus" if kind == "cpus" else "mems"
    try:
        want = parse_uint_list(value)
    except ValueError:
        raise InvalidArgument(f"Invalid value {q(value)[1:-1]} for cpuset {what}") from None
    avail_s = available if available is not None else (available_cpus() if what == "cpus" else available_mems())
    avail = parse_uint_list(avail_s)
    if not want <= avail:
        noun = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidArgument(f"Requested {noun} are not available - requested {q(value)[1:-1]}, available: {avail_s}")
    return value


# ---- block I/O ----

def blkio_weight(value: str | int, flag: str = "--blkio-weight") -> int:
    n = _int(value, flag, 0, 65535)
    if n != 0 and not 10 <= n <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    return n


def _device(path: str, whole: str) -> tuple[int, int]:
    """A block device path -> (major, minor)."""
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"bad format for device path: {q(whole)[1:-1]}")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"{q(path)[1:-1]}: {os.strerror(e.errno)}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{q(path)[1:-1]} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _split_dev(value: str, flag: str) -> tuple[str, str]:
    path, sep, rest = str(value).rpartition(":")
    if not sep or not path:
        raise _bad(value, flag, f"bad format: {q(value)[1:-1]}")
    return path, rest


def blkio_weight_device(value: str, flag: str = "--blkio-weight-device") -> WeightDevice:
    path, w = _split_dev(value, flag)
    if not re.fullmatch(r"\d+", w, re.ASCII) or int(w) > 65535 or (int(w) != 0 and not 10 <= int(w) <= 1000):
        raise _bad(value, flag, f"invalid weight for device: {q(value)[1:-1]}")
    maj, mnr = _device(path, value)
    return WeightDevice(maj, mnr, int(w))


def device_bps(value: str, flag: str = "--device-read-bps") -> ThrottleDevice:
    path, rate = _split_dev(value, flag)
    try:
        n = ram_in_bytes(rate, flag)
    except InvalidArgument:
        raise _bad(value, flag, f"invalid rate for device: {q(value)[1:-1]}. The correct format is "
                   "<device-path>:<number>[<unit>]. Number must be a positive integer. "
                   "Unit is optional and can be kb, mb, or gb") from None
    maj, mnr = _device(path, value)
    return ThrottleDevice(maj, mnr, n)


def device_iops(value: str, flag: str = "--device-read-iops") -> ThrottleDevice:
    path, rate = _split_dev(value, flag)
    if not re.fullmatch(r"\d+", rate, re.ASCII) or int(rate) > INT64_MAX:
        raise _bad(value, flag, f"invalid rate for device: {q(value)[1:-1]}. The correct format is "
                   "<device-path>:<number>. Number must be a positive integer")
    maj, mnr = _device(path, value)
    return ThrottleDevice(maj, mnr, int(rate))


# ---- misc ----

def pids_limit(value: str | int, flag: str = "--pids-limit") -> int:
    """0 and -1 (and any negative) mean unlimited -> -1."""
    n = _int(value, flag)
    return -1 if n <= 0 else n


def oom_score_adj(value: str | int, flag: str = "--oom-score-adj") -> int:
    n = _int(value, flag)
    if not -1000 <= n <= 1000:
        raise InvalidArgument(f"Invalid value {n}, range for oom score adj is [-1000, 1000]")
    return n


def memory_swappiness(value: str | int, flag: str = "--memory-swappiness") -> int:
    n = _int(value, flag)
    if n != -1 and not 0 <= n <= 100:
        raise InvalidArgument(f"Invalid value: {n}, valid memory swappiness range is 0-100")
    return n


def resources_from_flags(
    memory: str | None = None, memory_swap: str | None = None, memory_reservation: str | None = None,
    memory_swappiness: str | int | None = None, oom_kill_disable: bool = False,
    cpus: str | None = None, cpu_shares: str | int | None = None, cpu_period: str | int | None = None,
    cpu_quota: str | int | None = None, cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
    pids_limit: str | int | None = None, blkio_weight: str | int | None = None,
    blkio_weight_device: list[str] = (), device_read_bps: list[str] = (), device_write_bps: list[str] = (),
    device_read_iops: list[str] = (), device_write_iops: list[str] = (), privileged: bool = False,
) -> tuple[Resources, list[str]]:
    """docker run's resource flags -> (Resources, warnings), with docker's combination checks."""
    g = globals()
    warnings: list[str] = []
    r = Resources(devices=None if privileged else default_device_rules())
    mem = g["memory"](memory) if memory is not None else 0
    if mem and mem < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = g["memory_swap"](memory_swap) if memory_swap is not None else 0
    if swap > 0 and not mem:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap > 0 and swap < mem:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if mem and swap == 0:
        swap = 2 * mem  # docker: unset --memory-swap means as much swap as memory
    res = g["ram_in_bytes"](memory_reservation, "--memory-reservation") if memory_reservation is not None else 0
    if res and res < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if mem and res and mem < res:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    if oom_kill_disable and not mem:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                        "this can result in the system running out of resources.")
    r.memory.limit = mem or None
    r.memory.swap = swap or None
    r.memory.reservation = res or None
    r.memory.disable_oom_killer = True if oom_kill_disable else None
    if memory_swappiness is not None:
        sw = g["memory_swappiness"](memory_swappiness)
        r.memory.swappiness = None if sw == -1 else sw

    if cpus is not None and (cpu_period not in (None, 0, "0") or cpu_quota not in (None, 0, "0")):
        if g["cpus"](cpus) != (0, 0):
            which = "CPU Period" if cpu_period not in (None, 0, "0") else "CPU Quota"
            raise InvalidArgument(f"Conflicting options: Nano CPUs and {which} cannot both be set")
    if cpus is not None:
        quota, period = g["cpus"](cpus)
        if quota:
            r.cpu.quota, r.cpu.period = quota, period
    if cpu_period is not None and g["cpu_period"](cpu_period):
        r.cpu.period = g["cpu_period"](cpu_period)
    if cpu_quota is not None and g["cpu_quota"](cpu_quota):
        r.cpu.quota = g["cpu_quota"](cpu_quota)
    if cpu_shares is not None:
        sh, w = g["cpu_shares"](cpu_shares)
        warnings += w
        r.cpu.shares = sh or None
    if cpuset_cpus:
        r.cpu.cpus = cpuset(cpuset_cpus, "cpus")
    if cpuset_mems:
        r.cpu.mems = cpuset(cpuset_mems, "mems")
    if pids_limit is not None:
        r.pids.limit = g["pids_limit"](pids_limit)
    if blkio_weight is not None:
        r.block_io.weight = g["blkio_weight"](blkio_weight) or None
    r.block_io.weight_device = [g["blkio_weight_device"](v) for v in blkio_weight_device]
    r.block_io.throttle_read_bps_device = [device_bps(v, "--device-read-bps") for v in device_read_bps]
    r.block_io.throttle_write_bps_device = [device_bps(v, "--device-write-bps") for v in device_write_bps]
    r.block_io.throttle_read_iops_device = [device_iops(v, "--device-read-iops") for v in device_read_iops]
    r.block_io.throttle_write_iops_device = [device_iops(v, "--device-write-iops") for v in device_write_iops]
    return r, warnings
