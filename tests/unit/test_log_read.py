"""Reading the json-file log: where a follower must go on after the first read (no root needed)."""
import json
import os

from nsbox.runtime.logs import read_records


def line(text: str) -> bytes:
    return json.dumps({"log": text, "stream": "stdout", "time": "2026-01-01T00:00:00.000000000Z"}).encode() + b"\n"


def test_read_to_stops_after_the_last_whole_line(tmp_path):
    path = str(tmp_path / "c-json.log")
    with open(path, "wb") as f:
        f.write(line("1\n") + line("2\n") + line("3\n")[:10])  # the third is still being written
    read_to = {}
    recs = list(read_records(path, read_to))
    assert [r["log"] for r in recs] == ["1\n", "2\n"]
    ino, pos = read_to[path]
    assert ino == os.stat(path).st_ino and pos == len(line("1\n") + line("2\n"))
    # what lands after the read is where the follower starts: nothing lost, nothing twice
    with open(path, "ab") as f:
        f.write(line("3\n")[10:] + line("4\n"))
    with open(path, "rb") as f:
        f.seek(pos)
        rest = [json.loads(x)["log"] for x in f.read().splitlines()]
    assert rest == ["3\n", "4\n"]


def test_rotated_files_come_first_and_get_their_own_offsets(tmp_path):
    path = str(tmp_path / "c-json.log")
    with open(path + ".1", "wb") as f:
        f.write(line("old\n"))
    with open(path, "wb") as f:
        f.write(line("new\n"))
    read_to = {}
    assert [r["log"] for r in read_records(path, read_to)] == ["old\n", "new\n"]
    assert read_to[path][1] == len(line("new\n")) and read_to[path + ".1"][1] == len(line("old\n"))
