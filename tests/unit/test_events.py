"""The events log is bounded by size and read across its rotation (real files, no root)."""
import os

from nsbox.runtime import events


def _ev(i: int) -> dict:
    return {"status": "start", "id": f"{i:064d}", "Action": "start", "time": i}


def test_events_log_stays_bounded_and_readable(tmp_path):
    root = str(tmp_path)
    limit = 4096
    for i in range(2000):
        events.append(root, _ev(i), max_bytes=limit)
        total = sum(os.path.getsize(p) for p in (events.log_path(root), events.log_path(root) + ".1")
                    if os.path.exists(p))
        line = len(str(_ev(i))) + 16
        assert total <= 2 * limit + 2 * line
    got = [e["time"] for e in events.read(root)]
    # the newest events, oldest first, without a gap or a repeat
    assert got == list(range(got[0], 2000)) and len(got) * 100 >= limit


def test_read_with_nothing_logged(tmp_path):
    assert events.read(str(tmp_path)) == []
