"""Reading and following the json-file log across rotations (real files, the real writer; no root)."""
import json
import os

from nsbox.runtime.logread import LogReader
from nsbox.runtime.logs import JsonFileWriter


def line(text: str) -> bytes:
    return json.dumps({"log": text, "stream": "stdout", "time": "2026-01-01T00:00:00.000000000Z"}).encode() + b"\n"


def logs(recs) -> list[str]:
    return [r["log"] for r in recs]


def test_a_line_being_written_is_read_whole_later(tmp_path):
    path = str(tmp_path / "c-json.log")
    with open(path, "wb") as f:
        f.write(line("1\n") + line("2\n") + line("3\n")[:10])  # the third is still being written
    r = LogReader(path)
    assert logs(r.records()) == ["1\n", "2\n"]
    with open(path, "ab") as f:
        f.write(line("3\n")[10:] + line("4\n"))
    assert logs(r.poll()) == ["3\n", "4\n"]   # nothing lost, nothing twice
    r.close()


def test_rotated_files_come_first(tmp_path):
    path = str(tmp_path / "c-json.log")
    with open(path + ".1", "wb") as f:
        f.write(line("old\n"))
    with open(path, "wb") as f:
        f.write(line("new\n"))
    r = LogReader(path)
    assert logs(r.records()) == ["old\n", "new\n"]
    r.close()


def _writer(path: str, max_file: int) -> JsonFileWriter:
    return JsonFileWriter(path, max_size=len(line("0000\n")) * 10, max_file=max_file)  # 10 lines a file


def _write(w: JsonFileWriter, a: int, b: int) -> None:
    for i in range(a, b):
        w.write("stdout", f"{i:04d}\n".encode())


def test_follower_finishes_the_rotated_file_first(tmp_path):
    """The lines written to a file between the follower's last read and the rotation are not lost."""
    path = str(tmp_path / "c-json.log")
    for max_file in (1, 2, 3):
        for p in (path, path + ".1", path + ".2"):
            if os.path.exists(p):
                os.unlink(p)
        w = _writer(path, max_file)
        _write(w, 0, 5)
        r = LogReader(path)
        got = logs(r.records())
        for start in range(5, 201, 7):   # each step: lines the follower has not seen, then a rotation
            _write(w, start, start + 7)
            got += logs(r.poll())
        got += logs(r.poll())
        assert got == [f"{i:04d}\n" for i in range(201)], max_file
        r.close()
        w.close()


def test_follower_more_than_one_rotation_behind(tmp_path):
    """max-file=3: up to two rotations behind nothing is lost; further behind, the files rotated
    out of existence meanwhile are (the held file itself is still read to its end)."""
    path = str(tmp_path / "c-json.log")
    w = _writer(path, 3)
    _write(w, 0, 5)
    r = LogReader(path)
    got = logs(r.records())
    _write(w, 5, 25)            # two rotations: the held file is path.2 now
    got += logs(r.poll())
    assert got == [f"{i:04d}\n" for i in range(25)]
    _write(w, 25, 75)           # five more: the held file is deleted, and so are the two after it
    got = logs(r.poll())
    first = [f"{i:04d}\n" for i in range(25, 30)]            # the rest of the held file
    assert got[:5] == first
    rest = [int(x) for x in got[5:]]
    assert rest == list(range(rest[0], 75)) and rest[0] > 30  # then the oldest file left, in order
    r.close()
    w.close()


def test_follower_before_the_log_exists(tmp_path):
    path = str(tmp_path / "c-json.log")
    r = LogReader(path)
    assert r.records() == [] and r.poll() == []
    w = _writer(path, 2)
    _write(w, 0, 15)
    assert logs(r.poll()) == [f"{i:04d}\n" for i in range(15)]
    r.close()
    w.close()
