"""docker's json-file log driver: one JSON object per line, with size-based rotation."""
from __future__ import annotations

import json
import os
import time

MAX_LINE = 16 * 1024  # docker splits longer lines into partial messages


def _stamp() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


class JsonFileWriter:
    def __init__(self, path: str, max_size: int = 0, max_file: int = 1):
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.partial = {"stdout": b"", "stderr": b""}
        self.dropped = 0
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        for line in lines:
            self._emit(stream, line + b"\n")
        while len(self.partial[stream]) >= MAX_LINE:
            chunk, self.partial[stream] = self.partial[stream][:MAX_LINE], self.partial[stream][MAX_LINE:]
            self._emit(stream, chunk)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._emit(stream, rest)
                self.partial[stream] = b""

    def _emit(self, stream: str, data: bytes) -> None:
        rec = json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream, "time": _stamp()},
                         ensure_ascii=False).encode() + b"\n"
        if self.max_size and self.size + len(rec) > self.max_size and self.size > 0:
            self._rotate()
        from nsbox.runtime.fsutil import disk_full, write_all
        try:
            write_all(self.fd, rec)
        except OSError as e:
            if not disk_full(e):
                raise
            self.dropped += 1  # docker's json-file drops what does not fit; the monitor must live on
            self.size = os.fstat(self.fd).st_size
            return
        self.size += len(rec)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_file > 1:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        else:
            os.unlink(self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self) -> None:
        self.flush()
        os.close(self.fd)
