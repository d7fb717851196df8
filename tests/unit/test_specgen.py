"""Pure logic of specgen: docker's rules for commands, env, volumes, policies."""
import os

import pytest
from hypothesis import given, strategies as st

from nsbox.runtime import specgen as G
from nsbox.runtime.errors import InvalidArgument


IMG = {"Entrypoint": ["/ep"], "Cmd": ["default"]}


@pytest.mark.parametrize("ep,cmd,want", [
    (None, [], (["/ep"], ["default"])),              # image defaults
    (None, ["x"], (["/ep"], ["x"])),                 # args replace CMD only
    ("/other", [], (["/other"], [])),                # --entrypoint clears the image CMD
    ("/other", ["y"], (["/other"], ["y"])),
    ("", [], ([], ["default"])),                     # --entrypoint "" resets, image CMD stays
    ("", ["z"], ([], ["z"])),
])
def test_entrypoint_cmd_rules(ep, cmd, want):
    assert G.resolve_command(IMG, ep, cmd) == want


def test_no_entrypoint_in_image():
    assert G.resolve_command({"Cmd": ["sh"]}, None, []) == ([], ["sh"])
    assert G.resolve_command({}, None, []) == ([], [])


def test_env_merge_order_and_host_passthrough(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "h")
    monkeypatch.delenv("NOT_SET", raising=False)
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=file\nFROM_HOST\nB=with spaces inside\n")
    env = G.merge_env(["PATH=/bin", "A=image"], [str(f)], ["A=flag", "NOT_SET", "C="])
    assert env == ["PATH=/bin", "A=flag", "FROM_HOST=h", "B=with spaces inside", "C="]


def test_env_default_path():
    assert G.merge_env([], [], ["X=1"])[0].startswith("PATH=/usr/local/sbin")


@pytest.mark.parametrize("line", ["=x", "a b=c", " =1"])
def test_bad_env(line):
    with pytest.raises(InvalidArgument):
        G.parse_env_line(line)


def test_env_file_missing_and_binary(tmp_path):
    with pytest.raises(InvalidArgument, match="no such file"):
        G.parse_env_file(str(tmp_path / "nope"))
    bad = tmp_path / "bad"
    bad.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(InvalidArgument):
        G.parse_env_file(str(bad))


@given(st.text(max_size=200))
def test_env_file_never_crashes(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("e") / "f"
    p.write_text(text)
    try:
        out = G.parse_env_file(str(p))
    except InvalidArgument as e:
        assert "\n" not in str(e)
    else:
        assert all("=" in e for e in out)


@pytest.mark.parametrize("spec,kind,src,dst,ro", [
    ("/host:/ctr", "bind", "/host", "/ctr", False),
    ("/host:/ctr:ro", "bind", "/host", "/ctr", True),
    ("data:/ctr", "volume", "data", "/ctr", False),
    ("data:/ctr:ro,z", "volume", "data", "/ctr", True),
    ("/anon", "volume", "", "/anon", False),
])
def test_volume_specs(spec, kind, src, dst, ro):
    v = G.parse_volume(spec)
    assert (v.kind, v.source, v.destination, v.readonly) == (kind, src, dst, ro)


@pytest.mark.parametrize("spec", ["", ":", "/a:", "a:b", "/a:/b:xx", "/a:/b:ro:rw", "/a:/", "bad name!:/x", "/a:/b:ro,rw"])
def test_bad_volume_specs(spec):
    with pytest.raises(InvalidArgument) as e:
        G.parse_volume(spec)
    assert "\n" not in str(e.value)


@given(st.text(max_size=60))
def test_volume_parser_total(spec):
    try:
        v = G.parse_volume(spec)
    except InvalidArgument:
        return
    assert v.destination.startswith("/") and v.destination != "/"


@pytest.mark.parametrize("value,want", [
    ("no", {"Name": "", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
])
def test_restart_policy(value, want):
    assert G.parse_restart(value) == want


@pytest.mark.parametrize("value", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_bad_restart_policy(value):
    with pytest.raises(InvalidArgument):
        G.parse_restart(value)


def test_tmpfs_and_sysctls():
    t = G.parse_tmpfs("/run:size=64m,mode=1777")
    assert t["destination"] == "/run" and "size=64m" in t["options"] and "noexec" in t["options"]
    with pytest.raises(InvalidArgument):
        G.parse_tmpfs("relative")
    assert G.parse_sysctls(["net.ipv4.ip_forward=1"], "bridge") == {"net.ipv4.ip_forward": "1"}
    with pytest.raises(InvalidArgument):
        G.parse_sysctls(["vm.swappiness=1"], "bridge")
    with pytest.raises(InvalidArgument):
        G.parse_sysctls(["net.ipv4.ip_forward=1"], "host")


def test_log_opts():
    assert G.parse_log_opts(["max-size=1k", "max-file=3"]) == {"max-size": "1k", "max-file": "3"}
    for bad in (["max-file=3"], ["max-size=abc"], ["color=red"], ["max-size"]):
        with pytest.raises(InvalidArgument):
            G.parse_log_opts(bad)


def test_caps_resolution():
    from nsbox.runtime import caps as C
    assert "NET_ADMIN" not in C.resolve([], [], False)
    assert "NET_ADMIN" in C.resolve(["net_admin"], [], False)
    assert "CHOWN" not in C.resolve([], ["CAP_CHOWN"], False)
    assert C.resolve(["KILL"], ["ALL"], False) == ["KILL"]
    assert len(C.resolve([], [], True)) == C.last_cap() + 1
    with pytest.raises(InvalidArgument):
        C.resolve(["NOPE"], [], False)


def test_spec_shape():
    spec = G.build_spec(args=["sh"], env=["A=1"], cwd="/w", user="", hostname="h", tty=False, caps=["CHOWN"],
                        privileged=False, read_only=True, mounts=[], namespaces=[{"type": "pid"}], resources={},
                        cgroups_path="nsbox/x", sysctls={}, oom_score_adj=None, console_size=None)
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"]["readonly"] is True
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert [m["destination"] for m in spec["mounts"]][:2] == ["/proc", "/dev"]
    assert os.path.basename(spec["linux"]["cgroupsPath"]) == "x"
