"""`logs`: read the json-file log with docker's --tail/--since/--until/-t/-f semantics."""
from __future__ import annotations

import json
import os
import re
import sys
import time

from nsbox.runtime import state as S
from nsbox.runtime.errors import InvalidArgument
from nsbox.runtime.fsutil import parse_iso
from nsbox.runtime.logs import read_records

_REL = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")


def parse_time(value: str | None, now: float | None = None) -> float | None:
    """RFC 3339, a unix timestamp, or a duration before now (docker's rules)."""
    if value is None or value == "":
        return None
    now = time.time() if now is None else now
    m = _REL.match(value)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return now - float(m.group(1)) * mult
    if re.match(r"^\d+(\.\d+)?$", value):
        return float(value)
    try:
        v = value if "T" in value else value + "T00:00:00"
        return parse_iso(v.replace("+00:00", "Z") if "." in v else v.rstrip("Z"))
    except ValueError:
        raise InvalidArgument(f'invalid value for "since"/"until": {value}') from None


def _emit(rec: dict, timestamps: bool) -> None:
    data = rec["log"].encode("utf-8", "surrogateescape")
    if timestamps:
        data = rec["time"].encode() + b" " + data
    out = sys.stdout.buffer if rec.get("stream") != "stderr" else sys.stderr.buffer
    out.write(data)
    out.flush()


def show_logs(engine, rec, follow: bool = False, tail: str = "all", since: str | None = None,
              until: str | None = None, timestamps: bool = False) -> None:
    if tail not in ("all", "") and not (tail.isdigit() or (tail.startswith("-") and tail[1:].isdigit())):
        raise InvalidArgument(f"invalid value for tail: {tail}")
    t_since, t_until = parse_time(since), parse_time(until)
    read_to: dict = {}
    recs = [r for r in read_records(rec.log_path, read_to)
            if (t_since is None or parse_iso(r["time"]) >= t_since)
            and (t_until is None or parse_iso(r["time"]) <= t_until)]
    if tail not in ("all", "") and int(tail) >= 0:
        recs = recs[len(recs) - int(tail):] if int(tail) else []
    for r in recs:
        _emit(r, timestamps)
    if not follow or t_until is not None:
        return
    # follow: keep reading the live file (reopening it after a rotation) while the container runs
    path = rec.log_path
    ino, pos = read_to.get(path, (0, 0))  # where the read above stopped, not the size now
    buf = b""
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_ino != ino or st.st_size < pos):
            ino, pos = st.st_ino, 0
        if st is not None and st.st_size > pos:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    _emit(json.loads(line), timestamps)
                except ValueError:
                    continue
            continue
        state = engine.state(rec) if rec.exists() else S.ContainerState(Status=S.EXITED)
        if state.Status not in (S.RUNNING, S.PAUSED, S.RESTARTING):
            if os.path.exists(path) and os.path.getsize(path) > pos:
                continue
            return
        time.sleep(0.1)
