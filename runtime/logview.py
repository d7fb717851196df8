"""`logs`: read the json-file log with docker's --tail/--since/--until/-t/-f semantics."""
from __future__ import annotations

import re
import sys
import time

from nsbox.runtime import state as S
from nsbox.runtime.errors import InvalidArgument
from nsbox.runtime.fsutil import parse_iso
from nsbox.runtime.logread import LogReader

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
    reader = LogReader(rec.log_path)
    try:
        recs = [r for r in reader.records()
                if (t_since is None or parse_iso(r["time"]) >= t_since)
                and (t_until is None or parse_iso(r["time"]) <= t_until)]
        if tail not in ("all", "") and int(tail) >= 0:
            recs = recs[len(recs) - int(tail):] if int(tail) else []
        for r in recs:
            _emit(r, timestamps)
        if not follow or t_until is not None:
            return
        _follow(engine, rec, reader, timestamps)
    finally:
        reader.close()


def _follow(engine, rec, reader: LogReader, timestamps: bool) -> None:
    """Until the container has stopped and its monitor has written its last line."""
    while True:
        st = engine.state(rec) if rec.exists() else S.ContainerState(Status=S.EXITED)
        final = not st.running and not S.alive(st.MonitorPid, st.MonitorStart)
        recs = reader.poll()  # after the look at the state: what came before the exit is read
        for r in recs:
            _emit(r, timestamps)
        if recs:
            continue
        if final:
            return
        time.sleep(0.1)
