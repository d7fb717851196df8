"""Pure logic of update/stats: flag merging, validation, docker's number formatting."""
from __future__ import annotations

import pytest

from nsbox.runtime.errors import InvalidArgument
from nsbox.runtime.resources_ops import (StatsSample, UpdateRequest, _live_delta, bytes_size, cpu_percent,
                                         human_size, make_row, merge_flags, validate_update)
from nsbox.runtime.units import resources_from_flags

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("flags, msg", [
    ({"memory": "abc"}, 'invalid argument "abc" for "--memory" flag'),
    ({"cpus": "-1"}, "Range of CPUs"),
    ({"cpuset_cpus": "99"}, "Requested CPUs are not available"),
    ({"memory": "1m"}, "Minimum memory limit allowed is 6MB"),
    ({"blkio_weight": "5"}, "Range of blkio weight is from 10 to 1000"),
    ({"pids_limit": "x"}, 'for "--pids-limit" flag'),
    ({"cpus": "1", "cpu_quota": "50000"}, "Conflicting options"),
])
def test_validate_rejects_bad_values(flags, msg):
    with pytest.raises(InvalidArgument) as e:
        validate_update(UpdateRequest(flags=flags))
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_validate_needs_a_flag_and_a_good_restart_policy():
    with pytest.raises(InvalidArgument):
        validate_update(UpdateRequest())
    with pytest.raises(InvalidArgument):
        validate_update(UpdateRequest(restart="sometimes"))
    validate_update(UpdateRequest(restart="on-failure:3"))


def test_merge_replaces_given_flags_only():
    assert merge_flags({"memory": "32m", "pids_limit": "10"}, {"memory": "64m"}) == \
        {"memory": "64m", "pids_limit": "10"}


def test_merge_cpu_conflicts_like_docker():
    with pytest.raises(InvalidArgument, match="CPU Quota cannot be updated as Nano CPUs has already been set"):
        merge_flags({"cpus": "0.5"}, {"cpu_quota": "20000"})
    with pytest.raises(InvalidArgument, match="Nano CPUs cannot be updated as CPU Quota"):
        merge_flags({"cpu_quota": "20000"}, {"cpus": "1"})
    assert merge_flags({"cpus": "0.5"}, {"cpus": "1"}) == {"cpus": "1"}


def test_merge_memory_above_explicit_swap():
    with pytest.raises(InvalidArgument, match="update the memoryswap at the same time"):
        merge_flags({"memory": "32m", "memory_swap": "64m"}, {"memory": "128m"})
    # derived swap (not given at create) follows the new memory: 2x like docker run
    merged = merge_flags({"memory": "32m"}, {"memory": "128m"})
    r, _ = resources_from_flags(**merged)
    assert r.memory.swap == 256 << 20


def test_live_delta_writes_unlimited_explicitly():
    r, _ = resources_from_flags(**merge_flags({"cpus": "0.5", "pids_limit": "5"}, {"cpus": "0", "pids_limit": "0"}))
    d = _live_delta(r, {"cpus", "pids_limit"})
    assert d.cpu.quota == -1 and d.pids.limit == -1
    assert d.memory.limit is None and d.devices is None   # untouched knobs are not written


def test_sizes_like_go_units():
    assert human_size(0) == "0B"
    assert human_size(1234) == "1.234kB"
    assert human_size(2359296) == "2.359MB"
    assert bytes_size(516 * 1024) == "516KiB"
    assert bytes_size(64 << 20) == "64MiB"
    assert bytes_size(1536 << 20) == "1.5GiB"


def test_cpu_percent_is_one_cpu_per_hundred():
    prev = StatsSample("a" * 64, "x", running=True, taken_ns=0, cpu_ns=0)
    cur = StatsSample("a" * 64, "x", running=True, taken_ns=1_000_000_000, cpu_ns=500_000_000)
    assert cpu_percent(prev, cur, ncpu=2) == pytest.approx(50.0)
    assert cpu_percent(None, cur, ncpu=2) == 0.0


def test_row_for_running_and_stopped():
    prev = StatsSample("b" * 64, "web", running=True, taken_ns=0, cpu_ns=0)
    cur = StatsSample("b" * 64, "web", running=True, taken_ns=10**9, cpu_ns=10**9, mem_usage=32 << 20,
                      mem_limit=64 << 20, net_rx=1000, net_tx=0, blk_read=0, blk_write=4096, pids=3)
    r = make_row(prev, cur, ncpu=2)
    assert (r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs) == \
        ("b" * 12, "web", "100.00%", "32MiB / 64MiB", "50.00%", "1kB / 0B", "0B / 4.096kB", "3")
    assert make_row(None, cur, ref="web", no_trunc=True).ID == "b" * 64
    stopped = make_row(None, StatsSample("c" * 64, "old"))
    assert (stopped.CPUPerc, stopped.MemUsage, stopped.PIDs) == ("0.00%", "0B / 0B", "0")
