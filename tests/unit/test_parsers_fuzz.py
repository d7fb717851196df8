"""Property tests for every small parser a user reaches through run/create flags:
any input either parses or fails with a one-line InvalidArgument, never anything else."""
import pytest
from hypothesis import given, strategies as st

from nsbox.runtime import specgen as G
from nsbox.runtime.errors import InvalidArgument

TEXT = st.text(max_size=60)
ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def total(fn, *args):
    try:
        return fn(*args)
    except InvalidArgument as e:
        assert "\n" not in str(e) and str(e)
        return None


@given(TEXT)
def test_restart_policy(value):
    out = total(G.parse_restart, value)
    if out is not None:
        assert out["Name"] in ("", "always", "on-failure", "unless-stopped")
        assert out["MaximumRetryCount"] >= 0


@given(st.integers(min_value=0, max_value=10**6))
def test_restart_policy_counts_round_trip(n):
    assert G.parse_restart(f"on-failure:{n}") == {"Name": "on-failure", "MaximumRetryCount": n}


@given(TEXT)
def test_tmpfs(value):
    out = total(G.parse_tmpfs, value)
    if out is not None:
        assert out["destination"].startswith("/") and out["type"] == "tmpfs"
        assert all("," not in o for o in out["options"])


@given(st.lists(TEXT, max_size=5))
def test_labels(items):
    out = total(G.parse_labels, items)
    if out is not None:
        assert all(k for k in out)


@given(st.lists(ASCII, max_size=4))
def test_log_opts(items):
    out = total(G.parse_log_opts, items)
    if out is not None:
        assert set(out) <= {"max-size", "max-file"}


@given(st.lists(ASCII, max_size=4), st.sampled_from(["bridge", "host", "none"]))
def test_sysctls(items, mode):
    out = total(G.parse_sysctls, items, mode)
    if out is not None:
        assert all(k.startswith(("net.", "kernel.", "fs.mqueue.")) for k in out)
        if mode == "host":
            assert not any(k.startswith("net.") for k in out)


@given(st.lists(ASCII, max_size=3), st.booleans())
def test_security_opts(items, privileged):
    out = total(G.parse_security_opts, items, privileged)
    if out is not None:
        assert set(out) == {"seccomp", "no_new_privileges"}
        if privileged:
            assert out["seccomp"] is False


@given(ASCII)
def test_signals(value):
    from nsbox.runtime.engine import parse_signal
    n = total(parse_signal, value)
    if n is not None:
        assert 0 < n < 65


@pytest.mark.parametrize("value,want", [("TERM", 15), ("SIGKILL", 9), ("9", 9), ("usr1", 10)])
def test_signal_names(value, want):
    from nsbox.runtime.engine import parse_signal
    assert parse_signal(value) == want


@given(ASCII)
def test_ps_filters(value):
    from nsbox.cli.container import _match_filter
    try:
        _match_filter(value, _Rec(), {"Name": "/n", "Config": {"Labels": {}}, "HostConfig": {}}, _St(), {})
    except InvalidArgument as e:
        assert "\n" not in str(e)


class _Rec:
    id = "a" * 64


class _St:
    Status = "running"
    ExitCode = 0


@given(ASCII)
def test_caps(value):
    from nsbox.runtime import caps as C
    total(C.resolve, [value], [], False)
