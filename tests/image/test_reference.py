import pytest
from hypothesis import given, strategies as st

from nsbox.image import reference as R
from nsbox.runtime.errors import InvalidArgument


@pytest.mark.parametrize("ref,canon", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("quay.io/podman/hello", "quay.io/podman/hello:latest"),
])
def test_normalize(ref, canon):
    assert R.normalize(ref) == canon


@pytest.mark.parametrize("canon,fam", [
    ("docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/user/app:v1", "user/app:v1"),
    ("quay.io/x/y:2", "quay.io/x/y:2"),
])
def test_familiar(canon, fam):
    assert R.familiar(canon) == fam


@pytest.mark.parametrize("bad", ["", "Busybox", "a:b:c", "a//b", "-a", "a:", "a@sha256:zz", "a b", "/a", "a/"])
def test_invalid(bad):
    with pytest.raises(InvalidArgument):
        R.parse(bad)


def test_digest():
    r = R.parse("busybox@sha256:" + "a" * 64)
    assert r.tag is None and r.digest == "sha256:" + "a" * 64


comp = st.from_regex(r"[a-z0-9]{1,8}(?:[_-][a-z0-9]{1,8}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(comp, min_size=1, max_size=3), st.one_of(st.none(), tag))
def test_roundtrip(parts, t):
    ref = "/".join(parts) + (f":{t}" if t else "")
    canon = R.normalize(ref)
    # normalization is idempotent and survives the familiar form
    assert R.normalize(canon) == canon
    assert R.normalize(R.familiar(canon)) == canon
    assert canon.endswith(":" + (t or "latest"))


@given(st.text(max_size=60))
def test_never_crashes(s):
    try:
        r = R.parse(s)
    except InvalidArgument:
        return
    assert R.normalize(str(r) if r.tag else r.name) == r.name
