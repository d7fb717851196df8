"""The attach protocol between the monitor and CLI clients (run, start -a, attach).

Frames: 1 byte type, 4 bytes big-endian length, payload. Output is broadcast to every client;
stdin and resizes come from clients. The exit frame carries the container's exit code, sent
after the monitor has finished its cleanup (so `run --rm` returns after the removal).
"""
from __future__ import annotations

import os
import socket
import struct

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_EOF, DETACH = range(7)
_HDR = struct.Struct(">BI")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HDR.pack(kind, len(payload)) + payload


class FrameReader:
    """Accumulates bytes from a stream socket and yields complete frames."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes):
        self.buf += data
        while len(self.buf) >= _HDR.size:
            kind, n = _HDR.unpack_from(self.buf)
            if len(self.buf) < _HDR.size + n:
                break
            payload = bytes(self.buf[_HDR.size:_HDR.size + n])
            del self.buf[:_HDR.size + n]
            yield kind, payload


def _short(path: str, fn) -> None:
    """AF_UNIX paths are capped at 108 bytes; go through a directory fd so deep roots work."""
    d = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    try:
        fn(f"/proc/self/fd/{d}/{os.path.basename(path)}")
    finally:
        os.close(d)


def bind(sock: socket.socket, path: str) -> None:
    _short(path, sock.bind)


def connect(sock: socket.socket, path: str) -> None:
    _short(path, sock.connect)
