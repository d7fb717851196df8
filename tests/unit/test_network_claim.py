"""The core's judgement of a container's network objects (cleanup.claim_network_owner), on plain files."""
from __future__ import annotations

import os

import pytest

from nsbox.runtime import state as S
from nsbox.runtime.cleanup import claim_network_owner, uses_nsbox_network
from nsbox.runtime.fsutil import write_json
from nsbox.runtime.paths import Paths
from nsbox.runtime.state import ContainerRecord
from nsbox_testlib import lock_is_free


@pytest.fixture
def rec(tmp_path):
    paths = Paths(str(tmp_path / "root"), str(tmp_path / "run"))
    r = ContainerRecord(paths, "c" * 64)
    os.makedirs(r.dir)
    write_json(r.config_path, {"Id": r.id})
    return r


def _state(rec, **kw) -> None:
    rec.save_state(S.ContainerState(**kw))


def test_gone_when_not_in_the_store(tmp_path):
    paths = Paths(str(tmp_path / "root"), str(tmp_path / "run"))
    with claim_network_owner(paths, "d" * 64) as gone:
        assert gone
    with claim_network_owner(paths, "d" * 12) as gone:   # a short id from a table name
        assert gone


@pytest.mark.parametrize("status", [S.RUNNING, S.PAUSED, S.RESTARTING])
def test_running_owner_keeps_its_objects(rec, status):
    _state(rec, Status=status)
    with claim_network_owner(rec.paths, rec.id) as gone:
        assert not gone


@pytest.mark.parametrize("status", [S.CREATED, S.EXITED, S.REMOVING])
def test_stopped_owner_is_judged_under_its_start_lock(rec, status):
    _state(rec, Status=status)
    with rec.start_lock():
        pass   # the file exists once the container has been started
    with claim_network_owner(rec.paths, rec.id) as gone:
        assert gone
        assert not lock_is_free(rec.start_lock_path)   # nobody can start it while its leftovers are removed
    assert lock_is_free(rec.start_lock_path)


def test_starting_owner_is_never_garbage(rec):
    _state(rec, Status=S.CREATED)
    with rec.start_lock():   # a CLI in the middle of `start`
        with claim_network_owner(rec.paths, rec.id) as gone:
            assert not gone


def test_live_monitor_keeps_the_objects(rec):
    _state(rec, Status=S.EXITED, MonitorPid=os.getpid(), MonitorStart=S.proc_starttime(os.getpid()))
    with claim_network_owner(rec.paths, rec.id) as gone:
        assert not gone


def test_half_made_record_is_garbage(rec):
    os.unlink(rec.config_path)
    with claim_network_owner(rec.paths, rec.id) as gone:
        assert gone


def _cfg(mode: str, namespaces=None, **kw) -> dict:
    cfg = {"HostConfig": {"NetworkMode": mode}, **kw}
    if namespaces is not None:
        cfg["Spec"] = {"linux": {"namespaces": namespaces}}
    return cfg


@pytest.mark.parametrize("cfg,expected", [
    (_cfg("bridge", [{"type": "network", "nsbox.join": "netns"}]), True),
    # a pod's infra: it owns the pod's netns, addresses and ports
    (_cfg("bridge", [{"type": "network", "nsbox.join": "netns"}], Pod="p" * 64, IsInfra=True), True),
    # a pod member joins the infra's netns
    (_cfg("bridge", [{"type": "network", "nsbox.join": "i" * 64}], Pod="p" * 64), False),
    (_cfg("none", [{"type": "network"}]), False),
    (_cfg("host", []), False),
    (_cfg("container:x", [{"type": "network", "nsbox.join": "x" * 64}]), False),
    # no spec (an unreadable config): the network mode decides
    (_cfg("bridge", Pod="p" * 64, IsInfra=True), True),
    (_cfg("bridge", Pod="p" * 64), False),
    (_cfg("mynet"), True),
    ({}, True),
])
def test_uses_nsbox_network(cfg, expected):
    assert uses_nsbox_network(cfg) is expected
