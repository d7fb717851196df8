"""docker flag parsers: exact values, docker's rules, and hypothesis properties
(bad input -> InvalidArgument with a one-line message; good input round-trips)."""
from __future__ import annotations


import pytest
from hypothesis import given, strategies as st

from nsbox.runtime import units
from nsbox.runtime.errors import InvalidArgument

from .conftest import root_disk, root_disk_path

SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def one_line_error(fn, *a, **kw) -> str:
    with pytest.raises(InvalidArgument) as ei:
        fn(*a, **kw)
    msg = str(ei.value)
    assert msg and "\n" not in msg and len(msg.splitlines()) == 1
    return msg


@pytest.mark.parametrize("text,want", [
    ("512m", 512 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29), ("1G", 1 << 30), ("100", 100),
    ("1kb", 1024), ("1KiB", 1024), ("1 MiB", 1 << 20), ("2b", 2), ("0.5k", 512), ("1p", 1 << 50),
])
def test_ram_in_bytes_values(text, want):
    assert units.ram_in_bytes(text) == want


@pytest.mark.parametrize("text", ["", "m", "-1", "1x", "1ib", "1bi", "1mm", "1.2.3m", "1  m", " 1m", "1e3", "0x10"])
def test_ram_in_bytes_rejects(text):
    msg = one_line_error(units.ram_in_bytes, text)
    assert msg.startswith('invalid argument "') and "invalid size" in msg


@given(st.integers(0, 1 << 40), st.sampled_from(sorted(SUFFIX)), st.sampled_from(["", "b"]),
       st.booleans(), st.booleans())
def test_ram_in_bytes_roundtrip(n, sfx, b, upper, space):
    if sfx == "" and b == "" and space:
        space = False  # "5 " is not a size
    unit = (sfx + (b if sfx else b)).upper() if upper else sfx + b
    text = f"{n}{' ' if space and unit else ''}{unit}"
    if n * SUFFIX[sfx] > units.INT64_MAX:
        assert "out of range" in one_line_error(units.ram_in_bytes, text)
    else:
        assert units.ram_in_bytes(text) == n * SUFFIX[sfx]


@given(st.text(max_size=12))
def test_ram_in_bytes_garbage_is_one_line_error_or_value(s):
    try:
        v = units.ram_in_bytes(s)
    except InvalidArgument as e:
        assert len(str(e).splitlines()) == 1
    else:
        assert isinstance(v, int) and v >= 0


def test_memory_swap_minus_one():
    assert units.memory_swap("-1") == -1
    assert units.memory_swap("1g") == 1 << 30
    one_line_error(units.memory_swap, "-2")


@pytest.mark.parametrize("text,want", [("0.5", (50000, 100000)), ("1", (100000, 100000)),
                                       ("1.5", (150000, 100000)), ("0.01", (1000, 100000)), ("0", (0, 0))])
def test_cpus(text, want):
    assert units.cpus(text, ncpu=2) == want


def test_cpus_errors():
    assert "Range of CPUs is from 0.01 to 2.00" in one_line_error(units.cpus, "3", ncpu=2)
    one_line_error(units.cpus, "0.001", ncpu=2)
    assert "too precise" in one_line_error(units.cpus, "0.0000000001", ncpu=2)
    assert "rational" in one_line_error(units.cpus, "abc", ncpu=2)
    one_line_error(units.cpus, "-1", ncpu=2)


@given(st.integers(1, 200), st.integers(0, 99))
def test_cpus_property(whole_hundredths, _):
    text = f"{whole_hundredths // 100}.{whole_hundredths % 100:02d}"
    quota, period = units.cpus(text, ncpu=2)
    assert period == 100000 and quota == whole_hundredths * 1000


@given(st.text(max_size=10))
def test_cpus_garbage(s):
    try:
        units.cpus(s, ncpu=2)
    except InvalidArgument as e:
        assert len(str(e).splitlines()) == 1


def test_cpu_shares():
    assert units.cpu_shares("512") == (512, [])
    assert units.cpu_shares("0") == (0, [])
    v, w = units.cpu_shares("1")
    assert v == 2 and w
    v, w = units.cpu_shares("999999")
    assert v == 262144 and w
    one_line_error(units.cpu_shares, "-5")
    one_line_error(units.cpu_shares, "x")


def test_cpuset_against_this_machine():
    ncpu = len(units.parse_uint_list(units.available_cpus()))
    assert units.cpuset("0") == "0"
    assert "Requested CPUs are not available" in one_line_error(units.cpuset, "99")
    assert "Invalid value" in one_line_error(units.cpuset, "1-")
    assert "memory nodes" in one_line_error(units.cpuset, "7", "mems")
    assert ncpu >= 1


@given(st.sets(st.integers(0, 63), min_size=1))
def test_uint_list_roundtrip(s):
    text = ",".join(str(x) for x in sorted(s))
    assert units.parse_uint_list(text) == s
    lo, hi = min(s), max(s)
    assert units.parse_uint_list(f"{lo}-{hi}") == set(range(lo, hi + 1))


@given(st.text(max_size=10))
def test_cpuset_garbage(s):
    try:
        units.cpuset(s, "cpus", available="0-1")
    except InvalidArgument as e:
        assert len(str(e).splitlines()) == 1


@given(st.integers(-100000, 100000))
def test_blkio_weight_range(n):
    if n == 0 or 10 <= n <= 1000:
        assert units.blkio_weight(str(n)) == n
    else:
        one_line_error(units.blkio_weight, str(n))


@given(st.integers(-5000, 5000))
def test_oom_score_adj(n):
    if -1000 <= n <= 1000:
        assert units.oom_score_adj(str(n)) == n
    else:
        assert "range for oom score adj" in one_line_error(units.oom_score_adj, str(n))


@given(st.integers(-10, 1 << 40))
def test_pids_limit(n):
    assert units.pids_limit(str(n)) == (-1 if n <= 0 else n)


@given(st.text(max_size=8).filter(lambda s: not s.strip().lstrip("+-").isdigit()))
def test_int_flags_reject_garbage(s):
    for fn in (units.pids_limit, units.oom_score_adj, units.blkio_weight, units.cpu_shares):
        one_line_error(fn, s)


needs_disk = pytest.mark.skipif(root_disk_path() is None, reason="no device node for the root disk")


@needs_disk
def test_device_rates():
    dev, (maj, mnr) = root_disk_path(), root_disk()
    d = units.device_bps(f"{dev}:1mb")
    assert (d.major, d.minor, d.rate) == (maj, mnr, 1 << 20)
    d = units.device_iops(f"{dev}:100", "--device-write-iops")
    assert (d.major, d.minor, d.rate) == (maj, mnr, 100)
    w = units.blkio_weight_device(f"{dev}:300")
    assert (w.major, w.minor, w.weight) == (maj, mnr, 300)
    one_line_error(units.device_iops, f"{dev}:1.5")
    one_line_error(units.device_bps, f"{dev}:fast")
    one_line_error(units.blkio_weight_device, f"{dev}:5")
    assert "not a block device" in one_line_error(units.device_bps, "/dev/null:1mb")
    assert "bad format for device path" in one_line_error(units.device_bps, "vda:1mb")
    one_line_error(units.device_bps, "/dev/does-not-exist:1mb")


@given(st.text(max_size=20))
def test_device_flags_garbage(s):
    for fn in (units.device_bps, units.device_iops, units.blkio_weight_device):
        try:
            fn(s)
        except InvalidArgument as e:
            assert len(str(e).splitlines()) == 1


# ---- combinations (docker's daemon checks) ----

def test_memory_minimum():
    assert "Minimum memory limit allowed is 6MB" in one_line_error(units.resources_from_flags, memory="4m")


def test_swap_rules():
    one_line_error(units.resources_from_flags, memory="64m", memory_swap="32m")
    assert "Memory limit" in one_line_error(units.resources_from_flags, memory_swap="128m")
    r, _ = units.resources_from_flags(memory_swap="-1")
    assert r.memory.swap == -1 and r.memory.limit is None
    r, _ = units.resources_from_flags(memory="64m")
    assert r.memory.swap == 128 << 20  # docker: unset swap = as much swap as memory
    r, _ = units.resources_from_flags(memory="64m", memory_swap="-1")
    assert r.memory.swap == -1


def test_reservation_rules():
    one_line_error(units.resources_from_flags, memory="64m", memory_reservation="128m")
    one_line_error(units.resources_from_flags, memory_reservation="1m")


def test_cpus_conflicts_with_period():
    assert "Conflicting options" in one_line_error(units.resources_from_flags, cpus="1", cpu_period="50000")
    r, _ = units.resources_from_flags(cpu_period="50000", cpu_quota="25000")
    assert (r.cpu.quota, r.cpu.period) == (25000, 50000)
    one_line_error(units.resources_from_flags, cpu_period="10")
    one_line_error(units.resources_from_flags, cpu_quota="10")


def test_oom_kill_disable_without_memory_warns():
    _, w = units.resources_from_flags(oom_kill_disable=True)
    assert w and "OOM killer is disabled" in w[0]


def test_privileged_means_no_device_rules():
    assert units.resources_from_flags(privileged=True)[0].devices is None
    assert units.resources_from_flags()[0].devices
