"""`top`: the container's processes as the host's ps sees them."""
from __future__ import annotations

import subprocess

from nsbox.runtime import state as S
from nsbox.runtime.errors import Conflict, NsboxError


def container_pids(engine, rec) -> list[int]:
    st = engine.state(rec)
    if st.Status not in (S.RUNNING, S.PAUSED):
        raise Conflict(f"Container {rec.id} is not running")
    try:
        from nsbox.runtime.cgroups import get_driver
        pids = get_driver().open(rec.config()["Spec"]["linux"]["cgroupsPath"]).pids()
    except Exception:
        pids = []
    return sorted(set(pids) | {st.Pid})


def top(engine, rec, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    pids = container_pids(engine, rec)
    args = ps_args or ["-ef"]
    try:
        out = subprocess.run(["ps"] + args, capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise NsboxError("ps not found on the host (install procps)") from None
    except subprocess.CalledProcessError as e:
        raise NsboxError(f"ps: {e.stderr.strip()}") from None
    lines = out.splitlines()
    headers = lines[0].split()
    if "PID" not in headers:
        raise NsboxError("couldn't find PID field in ps output")
    pid_col = headers.index("PID")
    rows = []
    for line in lines[1:]:
        cells = line.split(None, len(headers) - 1)
        if len(cells) > pid_col and cells[pid_col].isdigit() and int(cells[pid_col]) in pids:
            rows.append(cells)
    return headers, rows
