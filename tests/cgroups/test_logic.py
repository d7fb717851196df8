"""Pure driver logic: conversions, v1 write ordering, io.max lines, mountinfo, Resources JSON."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from nsbox.runtime.cgroups import (DeviceRule, Resources, ThrottleDevice, WeightDevice, default_device_rules)
from nsbox.runtime.cgroups import resources as R
from nsbox.runtime.cgroups.v1 import parse_mountinfo


def test_shares_to_weight_matches_runc():
    assert R.shares_to_weight(2) == 1
    assert R.shares_to_weight(1024) == 39
    assert R.shares_to_weight(262144) == 10000
    assert R.shares_to_weight(0) == 0


@given(st.integers(2, 262144))
def test_shares_to_weight_in_range_and_monotone(s):
    w = R.shares_to_weight(s)
    assert 1 <= w <= 10000 and R.shares_to_weight(min(s + 1, 262144)) >= w


@given(st.integers(10, 1000))
def test_blkio_weight_conversion(w):
    assert 1 <= R.blkio_weight_to_io_weight(w) <= 10000


def test_swap_to_v2():
    assert R.swap_to_v2(None, 64) is None
    assert R.swap_to_v2(-1, 64) == "max"
    assert R.swap_to_v2(128, 64) == "64"
    assert R.swap_to_v2(64, 64) == "0"
    assert R.swap_to_v2(None, -1) == "max"
    with pytest.raises(ValueError):
        R.swap_to_v2(32, 64)
    with pytest.raises(ValueError):
        R.swap_to_v2(128, None)


def test_cpu_max():
    assert R.cpu_max_value(50000, 100000) == "50000 100000"
    assert R.cpu_max_value(-1, 100000) == "max 100000"
    assert R.cpu_max_value(None, None) is None
    assert R.cpu_max_value(20000, None) == "20000"


def test_io_max_lines_merge_per_device():
    b = R.BlockIOResources(throttle_read_bps_device=[ThrottleDevice(254, 0, 1048576)],
                           throttle_write_bps_device=[ThrottleDevice(254, 0, 2097152)],
                           throttle_read_iops_device=[ThrottleDevice(253, 0, 100)],
                           throttle_write_iops_device=[ThrottleDevice(254, 0, 50)])
    assert sorted(R.io_max_lines(b)) == ["253:0 riops=100", "254:0 rbps=1048576 wbps=2097152 wiops=50"]


@pytest.mark.parametrize("cur,new,order", [
    (None, 32 << 20, ["limit", "memsw"]),            # fresh cgroup (unlimited) -> lower: limit first
    (32 << 20, 64 << 20, ["memsw", "limit"]),        # raising: memsw first
    (64 << 20, 32 << 20, ["limit", "memsw"]),
    (32 << 20, -1, ["memsw", "limit"]),              # to unlimited = raising
    (32 << 20, None, ["limit", "memsw"]),            # swap only
])
def test_v1_memory_order(cur, new, order):
    assert R.v1_memory_order(cur, new) == order


def test_device_rule_lines():
    lines = [r.v1_line() for r in default_device_rules()]
    assert lines[0] == "a" and "c *:* m" in lines and "c 136:* rwm" in lines and "c 5:2 rwm" in lines
    assert not any(ln.startswith("b ") for ln in lines)


MOUNTINFO = """\
30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
32 24 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 24 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
"""


def test_parse_mountinfo():
    m = parse_mountinfo(MOUNTINFO)
    assert m == {"unified": "/sys/fs/cgroup/unified", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                 "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory"}


opt = lambda s: st.none() | s  # noqa: E731
nat = st.integers(0, 1 << 40)
tdev = st.builds(ThrottleDevice, st.integers(0, 300), st.integers(0, 300), nat)
resources = st.builds(
    Resources,
    memory=st.builds(R.MemoryResources, opt(nat), opt(nat), opt(st.integers(-1, 1 << 40)), opt(st.booleans()),
                     opt(st.integers(0, 100)), opt(st.booleans())),
    cpu=st.builds(R.CpuResources, opt(nat), opt(st.integers(-1, 10 ** 6)), opt(nat), opt(st.just("0-1")),
                  opt(st.just("0"))),
    pids=st.builds(R.PidsResources, opt(st.integers(-1, 1 << 20))),
    block_io=st.builds(R.BlockIOResources, opt(st.integers(10, 1000)),
                       st.lists(st.builds(WeightDevice, st.integers(0, 300), st.integers(0, 300),
                                          st.integers(10, 1000)), max_size=2),
                       st.lists(tdev, max_size=2), st.lists(tdev, max_size=2), st.lists(tdev, max_size=2),
                       st.lists(tdev, max_size=2)),
    devices=st.none() | st.lists(st.builds(DeviceRule, st.booleans(), st.sampled_from("abc"),
                                           opt(st.integers(0, 300)), opt(st.integers(0, 300)),
                                           st.sampled_from(["r", "rw", "rwm", "m"])), max_size=4),
)


@given(resources)
def test_resources_json_roundtrip(r):
    assert Resources.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_resources_oci_keys():
    r = Resources()
    r.memory.disable_oom_killer = True
    r.block_io.throttle_read_iops_device = [ThrottleDevice(8, 0, 5)]
    d = r.to_dict()
    assert d["memory"] == {"disableOOMKiller": True}
    assert d["blockIO"]["throttleReadIOPSDevice"] == [{"major": 8, "minor": 0, "rate": 5}]
    assert Resources.from_dict({}).devices == default_device_rules()  # missing = secure default
