"""`nsbox stats`: docker's columns, numbers that move with the work, json/template output, streaming."""
from __future__ import annotations

import json
import signal
import subprocess

import pytest

from ._helpers import cid_of

NET = ("--network", "none")
HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def _json_rows(nsbox, *args) -> list[dict]:
    out = nsbox.ok("stats", "--no-stream", "--format", "json", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.vm
def test_default_table_columns(nsbox):
    cid = cid_of(nsbox.ok("run", "-d", *NET, "--name", "idle", "-m", "64m", "busybox", "sleep", "300"))
    lines = nsbox.ok("stats", "--no-stream").splitlines()
    cols = [c.strip() for c in lines[0].split("   ") if c.strip()]
    assert cols == HEADER
    row = next(line for line in lines[1:] if line.startswith(cid[:12]))
    assert "idle" in row and "/ 64MiB" in row and row.split()[-1] == "1"


@pytest.mark.vm
def test_numbers_move_with_work(nsbox):
    nsbox.ok("run", "-d", *NET, "--name", "busy", "busybox", "sh", "-c",
             "sleep 300 & while :; do :; done")
    nsbox.ok("run", "-d", *NET, "--name", "idle", "busybox", "sleep", "300")
    rows = {r["Name"]: r for r in _json_rows(nsbox, "busy", "idle")}
    assert set(rows) == {"busy", "idle"}
    assert float(rows["busy"]["CPUPerc"].rstrip("%")) > 0.0
    assert rows["busy"]["PIDs"] == "2" and rows["idle"]["PIDs"] == "1"
    assert rows["busy"]["NetIO"] == "0B / 0B"          # --network none: only lo, which is skipped
    assert rows["busy"]["Container"] == "busy"          # .Container is what the user typed
    assert not rows["busy"]["MemUsage"].startswith("0B")


@pytest.mark.vm
def test_memory_usage_grows(nsbox):
    # tmpfs pages are charged to the container's memory cgroup and stay while the file exists
    cid = cid_of(nsbox.ok("run", "-d", *NET, "-m", "256m", "--tmpfs", "/t", "busybox", "sleep", "300"))

    def mem_pct() -> float:
        return float(_json_rows(nsbox, cid)[0]["MemPerc"].rstrip("%"))
    before = mem_pct()
    assert before < 5.0
    nsbox.ok("exec", cid, "dd", "if=/dev/zero", "of=/t/f", "bs=1M", "count=64")
    after = mem_pct()
    assert after >= before + 20.0          # 64 MiB of 256 MiB is 25%
    assert "MiB / 256MiB" in _json_rows(nsbox, cid)[0]["MemUsage"]


@pytest.mark.vm
def test_all_and_stopped(nsbox):
    run = cid_of(nsbox.ok("run", "-d", *NET, "--name", "up", "busybox", "sleep", "300"))
    nsbox.ok("create", *NET, "--name", "down", "busybox", "true")
    names = {r["Name"] for r in _json_rows(nsbox)}
    assert names == {"up"}
    rows = {r["Name"]: r for r in _json_rows(nsbox, "-a")}
    assert set(rows) == {"up", "down"}
    assert rows["down"]["PIDs"] == "0" and rows["down"]["CPUPerc"] == "0.00%"
    full = _json_rows(nsbox, "--no-trunc", run)[0]
    assert full["ID"] == run


@pytest.mark.vm
def test_format_template_and_table(nsbox):
    nsbox.ok("run", "-d", *NET, "--name", "t1", "busybox", "sleep", "300")
    assert nsbox.ok("stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", "t1").strip() == "t1:1"
    lines = nsbox.ok("stats", "--no-stream", "--format", "table {{.Name}}\t{{.MemPerc}}\t{{.PIDs}}", "t1").splitlines()
    assert lines[0].split() == ["NAME", "MEM", "%", "PIDS"] and lines[1].split()[0] == "t1"


@pytest.mark.vm
def test_unknown_container(nsbox):
    r = nsbox("stats", "--no-stream", "nosuch")
    assert r.returncode != 0 and "No such container: nosuch" in r.stderr and r.stdout == ""


@pytest.mark.vm
def test_streaming_without_tty_until_interrupted(nsbox):
    nsbox.ok("run", "-d", *NET, "--name", "s1", "busybox", "sleep", "300")
    p = nsbox.popen("stats", "--format", "{{.Name}} {{.PIDs}}", "s1", stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    try:
        frames = [p.stdout.readline(), p.stdout.readline()]   # one line per frame here
        assert frames == ["s1 1\n", "s1 1\n"]
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "\033[" not in out and err == ""
