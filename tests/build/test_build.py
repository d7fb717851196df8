"""Real builds through the CLI: real RUN containers, real layers, `run --network none` checks."""
from __future__ import annotations

import io
import json
import os
import tarfile

import pytest


def ctx(tmp_path, dockerfile: str, files: dict | None = None, name: str = "ctx") -> str:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "Dockerfile").write_text(dockerfile)
    for rel, data in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(d)


def tarball(files: dict, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def run(nsbox, image, *cmd) -> str:
    return nsbox.ok("run", "--rm", "--network", "none", image, *cmd)


def no_containers(nsbox) -> bool:
    return nsbox.ok("ps", "-aq") == ""


def test_seed_example(nsbox, tmp_path):
    d = ctx(tmp_path, "FROM busybox\nMAINTAINER jinlong\nRUN mkdir test1\nRUN touch test2\nCOPY test3 .\n"
                      "ADD test4.tar.gz .\nENTRYPOINT [\"/bin/sh\"]\nCMD [\"-c\",\"ls -l\"]\n",
            {"test3": "three\n", "test4.tar.gz": tarball({"fa": b"a", "fb": b"b"})})
    out = nsbox.ok("build", "-t", "mysh", d)
    assert "Step 1/8 : FROM busybox" in out and "Step 8/8 : CMD [\"-c\",\"ls -l\"]" in out
    assert " ---> Running in " in out
    assert "Successfully tagged mysh:latest" in out
    built = [l for l in out.splitlines() if l.startswith("Successfully built ")][0].split()[-1]
    assert nsbox.inspect("mysh")["Id"].split(":")[1].startswith(built)
    listing = run(nsbox, "mysh")
    for name in ("test1", "test2", "test3", "fa", "fb"):
        assert f" {name}\n" in listing, listing
    assert run(nsbox, "mysh", "-c", "cat /test3; date +%Y").startswith("three\n")
    assert no_containers(nsbox)
    cfg = nsbox.inspect("mysh")
    assert cfg["Config"]["Entrypoint"] == ["/bin/sh"] and cfg["Config"]["Cmd"] == ["-c", "ls -l"]
    assert cfg["Author"] == "jinlong" if "Author" in cfg else True

    # rebuild: every step after FROM comes from the cache, same image
    again = nsbox.ok("build", "-t", "mysh", d)
    assert again.count(" ---> Using cache") == 7
    assert f"Successfully built {built}" in again
    # a context change invalidates COPY and everything after it
    (tmp_path / "ctx" / "test3").write_text("changed\n")
    third = nsbox.ok("build", "-t", "mysh", d)
    assert third.count(" ---> Using cache") == 3
    assert run(nsbox, "mysh", "-c", "cat /test3") == "changed\n"
    # --no-cache runs everything
    assert "Using cache" not in nsbox.ok("build", "--no-cache", "-t", "mysh", d)


def test_multistage_copy_from_target_and_quiet(nsbox, tmp_path):
    d = ctx(tmp_path, "FROM busybox AS builder\nWORKDIR /src\nRUN echo built > out.txt && mkdir -p sub && "
                      "echo deep > sub/x\n\nFROM busybox AS other\nRUN echo other > /o\n\n"
                      "FROM scratch\nCOPY --from=builder /src/out.txt /app/\nCOPY --from=builder /src/sub /app/sub\n"
                      "COPY --from=busybox /bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"cat\", \"/app/out.txt\"]\n")
    iid = nsbox.ok("build", "-q", "-t", "ms", d).strip()
    assert iid.startswith("sha256:") and len(iid) == 71
    assert nsbox.inspect("ms")["Id"] == iid
    assert run(nsbox, "ms") == "built\n"
    assert run(nsbox, "ms", "/bin/busybox", "cat", "/app/sub/x") == "deep\n"
    out = nsbox.ok("build", "--target", "other", "-t", "ms-other", d)
    assert "Step 5/5 : RUN echo other > /o" in out
    assert run(nsbox, "ms-other", "cat", "/o") == "other\n"
    r = nsbox("build", "--target", "nope", d)
    assert r.returncode == 125 and "failed to reach build target nope" in r.stderr


def test_args_env_user_workdir(nsbox, tmp_path, paths):
    d = ctx(tmp_path, "ARG BASE=busybox\nARG VERSION=1.0\nFROM ${BASE}\nARG VERSION\nARG WHO=world\n"
                      "ENV GREETING=\"hello ${WHO}\" V=${VERSION:-none} ALT=${UNSET:+x}\n"
                      "LABEL version=$VERSION\nWORKDIR /app\nWORKDIR sub\n"
                      "RUN echo \"$GREETING $V $WHO [$ALT] $(pwd)\" > /msg\n"
                      "USER nobody\nRUN id -u > /tmp/uid\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
                      "HEALTHCHECK --interval=5s --retries=2 CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\n"
                      "RUN echo shell ok > /tmp/sh\n")
    out = nsbox.ok("build", "--build-arg", "WHO=nsbox", "--build-arg", "UNUSED=1", "-t", "args", d)
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in out
    assert run(nsbox, "args", "cat", "/msg") == "hello nsbox 1.0 nsbox [] /app/sub\n"
    assert run(nsbox, "args", "cat", "/tmp/uid") == "65534\n"
    assert run(nsbox, "args", "pwd") == "/app/sub\n"
    env = run(nsbox, "args", "env")
    assert "GREETING=hello nsbox" in env and "WHO=" not in env      # ARG values do not persist
    cfg = nsbox.inspect("args")["Config"]
    assert cfg["User"] == "nobody" and cfg["Labels"]["version"] == "1.0"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"} and cfg["StopSignal"] == "SIGINT"
    assert cfg.get("Volumes") == {"/data": {}}
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    from nsbox.image.store import ImageStore
    assert ImageStore(paths).resolve("args").config["config"]["Shell"] == ["/bin/sh", "-ec"]


def test_intermediates_are_recorded_as_parents(nsbox, tmp_path, paths):
    from nsbox.image.build.cache import intermediate_ids
    from nsbox.image.store import ImageStore
    nsbox.ok("build", "-t", "par", ctx(tmp_path, "FROM busybox\nENV A=1\nENV B=2\n"))
    st = ImageStore(paths)
    top = st.resolve("par")
    mids = intermediate_ids(st)
    assert top.id not in mids and len(mids) >= 2


def test_failing_run_leaves_nothing(nsbox, tmp_path):
    before = nsbox.ok("images", "-q")
    d = ctx(tmp_path, "FROM busybox\nRUN echo visible-output\nRUN false\nRUN echo never\n")
    r = nsbox("build", "-t", "broken", d)
    assert r.returncode == 1
    assert "The command '/bin/sh -c false' returned a non-zero code: 1" in r.stderr
    assert "visible-output" in r.stdout
    assert "never" not in r.stdout
    assert nsbox("inspect", "broken").returncode != 0
    assert no_containers(nsbox)
    assert len(nsbox.ok("images", "-q").split()) >= len(before.split())


def test_parse_error_exit_125(nsbox, tmp_path):
    r = nsbox("build", "-t", "bad", ctx(tmp_path, "FROM busybox\nFROB x\n"))
    assert r.returncode == 125 and "line 2: unknown instruction: FROB" in r.stderr
    r = nsbox("build", ctx(tmp_path, "FROM busybox\nONBUILD RUN x\n", name="c2"))
    assert r.returncode == 125 and "ONBUILD" in r.stderr
    r = nsbox("build", ctx(tmp_path, "FROM busybox\nADD http://example.com/x /x\n", name="c3"))
    assert r.returncode == 125 and "URL" in r.stderr
    r = nsbox("build", ctx(tmp_path, "FROM busybox\nCOPY missing /x\n", name="c4"))
    assert r.returncode == 1 and "missing" in r.stderr
    r = nsbox("build", ctx(tmp_path, "FROM busybox\nCOPY a b c\n", {"a": "", "b": ""}, name="c5"))
    assert r.returncode == 1 and "the destination must be a directory and end with a /" in r.stderr
    r = nsbox("build", ctx(tmp_path, "FROM no-such-base\n", name="c6"))
    assert r.returncode == 1 and "no-such-base" in r.stderr
    assert no_containers(nsbox)


def test_copy_rules_chown_dockerignore_and_file_flag(nsbox, tmp_path):
    files = {"a.txt": "a", "b.txt": "b", "skip.log": "s", "dir/inner/f": "f", "dir/secret.key": "k",
             "dir/keep.key": "keep", ".dockerignore": "*.log\ndir/*.key\n!dir/keep.key\n",
             "other.Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
             "arch.tar.xz": tarball({"x/y": b"xy"}, "w:xz"), "plain.gz": b"not a tar"}
    d = ctx(tmp_path, "FROM busybox\nWORKDIR /w\nCOPY *.txt dest/\nCOPY dir /d\nCOPY a.txt renamed\n"
                      "COPY --chown=nobody:mail b.txt /owned/\nADD arch.tar.xz /x/\nADD plain.gz /p/\n"
                      "COPY ../../../a.txt /esc/\n", files)
    nsbox.ok("build", "-t", "cp", d)
    ls = run(nsbox, "cp", "sh", "-c", "cd /w && find . /d /owned /x /p /esc | sort")
    for p in ("./dest/a.txt", "./dest/b.txt", "./renamed", "/d/inner/f", "/d/keep.key", "/x/x/y", "/p/plain.gz",
              "/esc/a.txt"):
        assert p in ls.split(), ls
    assert "/d/secret.key" not in ls and "skip.log" not in ls
    assert run(nsbox, "cp", "stat", "-c", "%U:%G", "/owned/b.txt") == "nobody:mail\n"
    nsbox.ok("build", "-f", os.path.join(d, "other.Dockerfile"), "-t", "cp2", d)
    listing = run(nsbox, "cp2", "ls", "-a", "/ctx").split()
    assert "a.txt" in listing and "skip.log" not in listing and ".dockerignore" in listing


def test_symlink_out_of_context_stays_inside(nsbox, tmp_path):
    d = ctx(tmp_path, "FROM busybox\nCOPY link/ /got/\nCOPY evil /evil\n", {"etc/hostname": "inside\n"})
    os.symlink("/etc", os.path.join(d, "link"))
    os.symlink("/etc/hostname", os.path.join(d, "evil"))
    nsbox.ok("build", "-t", "sym", d)
    assert run(nsbox, "sym", "cat", "/evil") == "inside\n"
    assert run(nsbox, "sym", "ls", "/got") == "hostname\n"


def test_image_symlinks_cannot_redirect_copy_to_the_host(nsbox, tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    d = ctx(tmp_path, f"FROM busybox\nRUN mkdir -p /app && ln -s {host_dir} /app/sub && ln -s {host_dir}/f /app/file\n"
                      "COPY dir/ /app/\nCOPY one /app/file\n", {"dir/sub/pwned": "x", "one": "1"})
    nsbox.ok("build", "-t", "symimg", d)
    assert os.listdir(host_dir) == []
    assert run(nsbox, "symimg", "cat", "/app/sub/pwned") == "x"    # like docker: the link is replaced
    assert run(nsbox, "symimg", "cat", "/app/file") == "1"


def test_cache_keys_build_args_and_labels(nsbox, tmp_path):
    d = ctx(tmp_path, "FROM busybox\nARG V=1\nRUN echo $V > /v\nWORKDIR /tmp\n")
    nsbox.ok("build", "-t", "ca", d)
    out = nsbox.ok("build", "-t", "ca", d)
    assert out.count("Using cache") == 3
    out = nsbox.ok("build", "--build-arg", "V=2", "--label", "team=core", "-t", "ca", d)
    assert out.count("Using cache") == 1          # the ARG step (like docker), not the RUN using it
    assert run(nsbox, "ca", "cat", "/v") == "2\n"
    assert nsbox.inspect("ca")["Config"]["Labels"] == {"team": "core"}
    # a removed intermediate image is a cache miss, never an error
    nsbox.ok("rmi", "ca")
    nsbox.ok("image", "prune", "-f")
    assert nsbox.ok("build", "-t", "ca", d).count("Using cache") == 0


def test_kill9_midway_leaves_consistent_store(nsbox, tmp_path):
    import signal
    import subprocess
    d = ctx(tmp_path, "FROM busybox\nRUN echo step-one > /one\nRUN echo started && sleep 120\n")
    run(nsbox, "busybox", "true")  # the base image exists before we count
    before = set(nsbox.ok("images", "-aq", "--no-trunc").split())
    p = nsbox.popen("build", "-t", "killed", d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in p.stdout:
            if line.strip() == "started":
                break
        # a live build's dangling intermediate survives other commands' store opens
        assert len(set(nsbox.ok("images", "-aq", "--no-trunc").split()) - before) == 1
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
    assert nsbox("inspect", "killed").returncode != 0
    left = nsbox.ok("ps", "-aq").split()
    assert len(left) == 1                          # the RUN container: an ordinary, removable one
    nsbox.ok("rm", "-f", *left)
    assert no_containers(nsbox)
    # what the dead build committed and nothing refers to is swept at the next store open
    assert set(nsbox.ok("images", "-aq", "--no-trunc").split()) == before
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\nRUN echo step-one > /one\nRUN echo done\n")
    out = nsbox.ok("build", "-t", "killed", d)
    assert out.count("Using cache") == 0
    assert run(nsbox, "killed", "cat", "/one") == "step-one\n"


@pytest.mark.slow
def test_debian_multistage(nsbox, tmp_path):
    if "bootstrap" not in nsbox("image", "--help").stdout:
        pytest.skip("nsbox image bootstrap is not available")
    if nsbox("image", "inspect", "debian:bookworm").returncode != 0:
        r = nsbox("image", "bootstrap", "debian:bookworm", timeout=900)
        if r.returncode != 0:
            pytest.skip(f"debootstrap failed (offline?): {r.stderr.strip()[-200:]}")
    d = ctx(tmp_path, "ARG SUITE=bookworm\nFROM debian:${SUITE} AS build\nWORKDIR /src\n"
                      "COPY hello.sh .\nRUN chmod +x hello.sh && ./hello.sh > /src/out && dpkg -l | wc -l > /src/pkgs\n"
                      "FROM debian:${SUITE}\nRUN useradd -m app\nUSER app\nWORKDIR /home/app\n"
                      "COPY --from=build --chown=app:app /src/out ./\nCMD [\"cat\", \"out\"]\n",
            {"hello.sh": "#!/bin/bash\necho \"hello from $(. /etc/os-release; echo $VERSION_CODENAME)\"\n"})
    nsbox.ok("build", "-t", "deb-app", d, timeout=600)
    assert run(nsbox, "deb-app") == "hello from bookworm\n"
    assert run(nsbox, "deb-app", "stat", "-c", "%U", "out") == "app\n"
    assert no_containers(nsbox)
