"""User namespace flags, subordinate ids, range allocation and the init order (pure logic)."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, strategies as st

from nsbox.runtime import init as I
from nsbox.runtime import linux as L
from nsbox.runtime import specgen as G
from nsbox.runtime import userns as U
from nsbox.runtime.errors import InvalidArgument, NsboxError
from nsbox.runtime.fakesys import ExecCalled, FakeSyscalls

ids = st.integers(min_value=0, max_value=U.MAX_ID)


# --- parsers -------------------------------------------------------------------

@given(ids, ids, st.integers(min_value=1, max_value=U.MAX_ID))
def test_idmap_round_trips_or_refuses(c, h, n):
    text = f"{c}:{h}:{n}"
    if c + n <= U.MAX_ID and h + n <= U.MAX_ID and c < U.MAX_ID and h < U.MAX_ID:
        m = U.parse_idmap(text)
        assert (m.container, m.host, m.size) == (c, h, n) and m.text() == text
    else:
        with pytest.raises(InvalidArgument):
            U.parse_idmap(text)


@pytest.mark.parametrize("parse", [U.parse_idmap, U.parse_userns])
@given(text=st.text(max_size=5000))
def test_garbage_is_refused_in_one_short_line(parse, text):
    try:
        parse(text)
    except InvalidArgument as e:
        assert "\n" not in str(e) and len(str(e)) < 200


def test_userns_values():
    assert U.parse_userns(None).mode == "host" and not U.parse_userns("host").private
    assert U.parse_userns("auto") == U.UsernsRequest("auto", 0)
    assert U.parse_userns("auto:size=1024").size == 1024
    for bad in ("auto:size=0", "auto:size=x", "auto:size=\u00b2", "auto:uidmapping=0:1:2", "keep-id",
                "host:size=1", "auto:size"):
        with pytest.raises(InvalidArgument):
            U.parse_userns(bad)
    r = U.parse_userns(None, ["0:100000:1000"])
    assert r.mode == "private" and r.gidmap == r.uidmap           # one flag mirrors the other, as podman
    with pytest.raises(InvalidArgument, match="uid 0"):
        U.parse_userns(None, ["1:100000:1000"])
    with pytest.raises(InvalidArgument, match="cannot be combined"):
        U.parse_userns("auto", ["0:100000:1000"])
    with pytest.raises(InvalidArgument, match="overlap"):
        U.parse_userns(None, ["0:100000:1000", "10:300000:5"])
    with pytest.raises(InvalidArgument, match="overlap"):
        U.parse_userns(None, ["0:100000:1000", "2000:100500:5"])


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**4)), max_size=6),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**4)), max_size=6),
       st.integers(1, 5000))
def test_first_fit_is_inside_a_grant_and_clear_of_every_allocation(free, used, size):
    used_spans = [(s, s + n) for s, n in used]
    start = U.first_fit(free, used_spans, size)
    if start is None:
        return
    assert any(s <= start and start + size <= s + n for s, n in free)
    assert all(start + size <= u0 or start >= u1 for u0, u1 in used_spans)


def test_first_fit_takes_the_lowest_gap():
    assert U.first_fit([(100, 300)], [(100, 200)], 100) == 200
    assert U.first_fit([(100, 300)], [(200, 300)], 100) == 100      # a released range is reused
    assert U.first_fit([(100, 300)], [(100, 400)], 1) is None


def test_subids_by_name_or_uid():
    text = "# c\nnsbox:1000:50\nother:5:5\n999:2000:10\nnsbox:bad:1\nnsbox:3000:0\n"
    assert U.parse_subids(text, "nsbox", 999) == [(1000, 50), (2000, 10)]
    assert U.parse_subids(text, "nobody") == []


# --- allocation -------------------------------------------------------------------

def _allocator(tmp_path, grant="nsbox:100000:200000"):
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text(grant + "\n")
    (tmp_path / "containers").mkdir(exist_ok=True)
    return U.Allocator(str(tmp_path), str(tmp_path / "subuid"), str(tmp_path / "subgid"))


def test_allocation_is_disjoint_persistent_and_released(tmp_path):
    a = _allocator(tmp_path)
    for cid in ("a", "b", "c"):
        (tmp_path / "containers" / cid).mkdir()
    ua, ga = a.allocate("a")
    ub, _ = a.allocate("b", 1000)
    assert ua == ga == [U.IdMap(0, 100000, 65536)] and ub == [U.IdMap(0, 165536, 1000)]
    assert set(json.loads((tmp_path / "userns" / "allocations.json").read_text())) == {"a", "b"}
    a.release("a")
    assert _allocator(tmp_path).allocate("c", 100)[0] == [U.IdMap(0, 100000, 100)]   # reused
    with pytest.raises(NsboxError, match="no free range"):
        a.allocate("c", 10**6)


def test_allocation_forgets_containers_that_are_gone(tmp_path):
    a = _allocator(tmp_path, "nsbox:100000:65536")
    (tmp_path / "containers" / "a").mkdir()
    a.allocate("a")
    os.rmdir(tmp_path / "containers" / "a")      # a crash between allocation and record
    (tmp_path / "containers" / "b").mkdir()
    assert a.allocate("b")[0] == [U.IdMap(0, 100000, 65536)]


def test_allocation_without_subids_says_what_to_add(tmp_path):
    a = _allocator(tmp_path, "someone:1:1")
    with pytest.raises(NsboxError, match="nsbox:"):
        a.allocate("x")


def test_default_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("NSBOX_USERNS", raising=False)
    assert U.default_mode(str(tmp_path)) == ("host", "default")
    (tmp_path / "userns").mkdir()
    (tmp_path / "userns" / "config.json").write_text('{"userns": "auto"}')
    assert U.default_mode(str(tmp_path))[0] == "auto"
    monkeypatch.setenv("NSBOX_USERNS", "host")
    assert U.default_mode(str(tmp_path)) == ("host", "NSBOX_USERNS")


# --- the spec and the init order ---------------------------------------------------

def _spec(tmp_path):
    spec = G.build_spec(args=["/bin/true"], env=["PATH=/bin"], cwd="/", user="", hostname="box", tty=False,
                        caps=["CHOWN", "KILL"], privileged=False, read_only=False,
                        mounts=[{"destination": "/data", "type": "bind", "source": "/v", "options": ["rbind"],
                                 "nsbox.volume": True},
                                {"destination": "/b", "type": "bind", "source": "/h", "options": ["rbind"]}],
                        namespaces=[{"type": "pid"}, {"type": "mount"}, {"type": "network"}], resources={},
                        cgroups_path="p/x", sysctls={}, oom_score_adj=None, console_size=None)
    U.shape_spec(spec, [U.IdMap(0, 100000, 65536)], [U.IdMap(0, 200000, 65536)], own_netns=True)
    return spec


def test_shape_spec(tmp_path):
    spec = _spec(tmp_path)
    linux = spec["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert {"type": "user"} in linux["namespaces"]
    by_dest = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert "uid=100000" in by_dest["/dev"] and "gid=200000" in by_dest["/dev/shm"]
    assert "gid=200005" in by_dest["/dev/pts"]              # the tty group, shifted
    assert "nsbox-idmap" in by_dest["/data"] and "nsbox-idmap" not in by_dest["/b"]
    assert linux["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"


def test_init_joins_the_user_namespace_after_the_host_side_and_before_dropping(tmp_path):
    root = tmp_path / "merged"
    root.mkdir()
    cfg = {"Spec": _spec(tmp_path), "RootfsPath": str(root), "HostConfig": {},
           "Rootfs": {"kind": "overlay", "lowerdirs": ["/l"], "upper": str(tmp_path / "rw/upper"),
                      "work": str(tmp_path / "rw/work")}}
    sc = FakeSyscalls()
    r, w = os.pipe()
    io = I.InitIO(error_fd=-1, userns_fd=r, seccomp=b"compiled")
    try:
        with pytest.raises((ExecCalled, OSError)):
            I._init(sc, cfg, io)
    finally:
        os.close(w)
        os.close(r)
    names = sc.names()
    unshare = [c for c in sc.calls if c[0] == "unshare"][0]
    assert not unshare[1] & L.CLONE_NEWUSER                  # never unshared by PID 1: the monitor made it
    assert "open_tree_clone" in names and "mount_setattr_idmap" in names
    join = [i for i, c in enumerate(sc.calls) if c[0] == "setns" and c[2] == L.CLONE_NEWUSER]
    assert len(join) == 1
    assert names.index("pivot_root") < join[0]
    # setns(user) resets the bounding set: every drop and the final uid come after it
    drops = [i for i, c in enumerate(sc.calls) if c[0] == "prctl" and c[1] == L.PR_CAPBSET_DROP]
    assert drops and min(drops) > join[0]
    assert names.index("capset") > join[0]


def test_shift_ids_for_the_chowned_copy():
    shift = U.shift_ids([U.IdMap(0, 100000, 65536)], [U.IdMap(0, 200000, 1000)])
    assert shift(0, 0) == (100000, 200000)
    assert shift(1000, 5) == (101000, 200005)
    assert shift(70000, 5000) == (165534, -1)   # unmapped: the overflow id, or left alone
