"""seccomp profiles: docker's format parsed, resolved per capabilities, compiled with libseccomp."""
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from nsbox.runtime import seccomp as S
from nsbox.runtime import seccomp_bpf as B

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
                "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
                "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"]
HOST = S.Host("amd64", "SCMP_ARCH_X86_64", (6, 18))
PODMAN = "/usr/share/containers/seccomp.json"


def rules_for(oci: dict, name: str) -> list[dict]:
    return [r for r in oci["syscalls"] if name in r["names"]]


def test_default_profile_is_docker_allow_list():
    prof = S.load("default")
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    oci = S.resolve(prof, DEFAULT_CAPS, HOST)
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = {n for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}
    assert {"read", "execve", "openat", "arch_prctl", "ptrace", "chroot"} <= allowed
    for refused in ("io_uring_setup", "io_uring_enter", "keyctl", "mount", "unshare", "setns", "bpf",
                    "reboot", "init_module", "kexec_load", "open_by_handle_at", "userfaultfd"):
        assert not rules_for(oci, refused), refused
    (clone,) = rules_for(oci, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = rules_for(oci, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    assert sorted(r["args"][0]["value"] for r in rules_for(oci, "personality")) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert rules_for(oci, "socket")[0]["args"][0] == {"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}


def test_capabilities_include_and_exclude_rules():
    prof = S.load("default")
    admin = S.resolve(prof, DEFAULT_CAPS + ["CAP_SYS_ADMIN"], HOST)
    for name in ("mount", "unshare", "setns", "clone3", "sethostname", "umount2"):
        assert any(r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for r in rules_for(admin, name)), name
    assert not [r for r in rules_for(admin, "clone3") if r["action"] == "SCMP_ACT_ERRNO"]
    assert not [r for r in rules_for(admin, "clone") if r.get("args")]
    assert rules_for(S.resolve(prof, ["SYS_PTRACE"], HOST), "process_madvise")  # names without CAP_ too
    old = S.resolve(prof, [], S.Host("amd64", "SCMP_ARCH_X86_64", (4, 4)))
    assert not rules_for(old, "ptrace")  # minKernel 4.8


def test_architectures_without_arch_map():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": []}
    assert S.resolve(prof, [], HOST)["architectures"] == ["SCMP_ARCH_X86_64"]
    assert S.resolve({"defaultAction": "SCMP_ACT_ALLOW"}, [], HOST)["architectures"] == ["SCMP_ARCH_X86_64"]


@pytest.mark.skipif(not os.path.exists(PODMAN), reason="containers-common is not installed")
def test_podman_profile_loads_and_compiles():
    oci = S.resolve(S.load(PODMAN), DEFAULT_CAPS, HOST)
    assert oci["defaultErrnoRet"] == 38
    bpf = B.compile_bpf(oci)
    assert len(bpf) % 8 == 0 and 8 < len(bpf) <= 4096 * 8


def test_compile_and_cache(tmp_path):
    oci = S.resolve(S.load("default"), DEFAULT_CAPS, HOST)
    bpf = B.program(oci, str(tmp_path))
    assert len(bpf) % 8 == 0 and len(bpf) > 8
    (cached,) = os.listdir(tmp_path / "seccomp")
    assert (tmp_path / "seccomp" / cached).read_bytes() == bpf
    assert B.program(oci, str(tmp_path)) == bpf
    (tmp_path / "seccomp" / cached).write_bytes(b"short")  # a damaged cache entry is rebuilt
    assert B.program(oci, str(tmp_path)) == bpf
    other = S.resolve(S.load("default"), DEFAULT_CAPS + ["CAP_SYS_ADMIN"], HOST)
    assert B.program(other, str(tmp_path)) != bpf and len(os.listdir(tmp_path / "seccomp")) == 2


@pytest.mark.parametrize("text,why", [
    ("", "not JSON"), ("[]", "not a JSON object"), ('{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "X"}]}', "unknown action"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",'
     ' "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "index"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}', "architecture"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}', "names no syscall"),
])
def test_malformed_profiles(text, why):
    with pytest.raises(S.ProfileError, match=why):
        S.parse(text, "p.json")


def test_profile_must_be_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad in (str(fifo), str(tmp_path), "/dev/zero"):
        with pytest.raises(S.ProfileError, match="regular file|failed"):
            S.load(bad)
    with pytest.raises(S.ProfileError, match="No such file"):
        S.load(str(tmp_path / "missing.json"))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 2 ** 65) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=20)
ACTION = st.sampled_from(sorted(S.ACTIONS) + ["SCMP_ACT_NOPE"])
ARG = st.fixed_dictionaries({"index": st.integers(-1, 7), "value": st.integers(0, 2 ** 64), "op": st.sampled_from(sorted(S.OPS))},
                            optional={"valueTwo": st.integers(0, 2 ** 32)})
CALL = st.fixed_dictionaries({"names": st.lists(st.sampled_from(["read", "clone", "mkdir", "nosuchcall", "socket"]),
                                                min_size=1, max_size=3), "action": ACTION},
                             optional={"args": st.lists(ARG, max_size=3), "errnoRet": st.integers(0, 5000),
                                       "includes": st.fixed_dictionaries({}, optional={"caps": st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_KILL"]), max_size=2)}),
                                       "excludes": st.fixed_dictionaries({}, optional={"caps": st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_KILL"]), max_size=2)})})
PROFILE = st.fixed_dictionaries({"defaultAction": ACTION, "syscalls": st.lists(CALL, max_size=4)},
                                optional={"defaultErrnoRet": st.integers(0, 5000),
                                          "architectures": st.lists(st.sampled_from(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]), max_size=3)})


def _one_line(e: Exception) -> None:
    msg = str(e)
    assert "\n" not in msg and len(msg) < 400, msg


@given(st.one_of(st.binary(max_size=200), JSON.map(json.dumps)))
def test_parser_never_crashes(data):
    try:
        S.parse(data, "fuzz.json")
    except S.ProfileError as e:
        _one_line(e)


@settings(max_examples=60, deadline=None)
@given(PROFILE, st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_KILL", "CAP_CHOWN"]), max_size=3))
def test_structured_profiles_resolve_and_compile(prof, caps):
    """A profile either is refused in one line or resolves and compiles to a program the kernel takes."""
    try:
        S.validate(prof, "gen.json")
    except S.ProfileError as e:
        _one_line(e)
        return
    oci = S.resolve(prof, caps, HOST)
    S.validate(oci, "resolved")
    try:
        bpf = B.compile_bpf(oci)
    except S.ProfileError as e:
        _one_line(e)
        return
    assert len(bpf) % 8 == 0 and len(bpf) > 0
