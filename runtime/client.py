"""The CLI side of attach: relay our stdin/stdout/stderr (or our terminal) to the monitor."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

from nsbox.runtime import attach as A


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    A.connect(s, path)
    return s


def terminal_size(fd: int = 0) -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(fd)
        return sz.lines, sz.columns
    except OSError:
        return None


class RawTerminal:
    """Put our tty in raw mode for the session and restore it on exit."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = None

    def __enter__(self):
        import termios
        import tty
        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc):
        import termios
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, docker's default


class Detached(Exception):
    """The user typed the detach sequence: the container keeps running."""


def relay(sock: socket.socket, stdin: bool, tty: bool) -> int | None:
    """Until the monitor sends the exit frame (-> exit code) or goes away (-> None).

    With a tty and stdin, ctrl-p ctrl-q detaches (raises Detached) as in docker.
    """
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    reader = A.FrameReader()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    stdin_open = stdin
    if stdin_open:
        poller.register(0, select.POLLIN)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = None
    if tty:
        old_wakeup = signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGWINCH, lambda *_: None)
        poller.register(wake_r, select.POLLIN)
        size = terminal_size(0) or terminal_size(1)
        if size:
            sock.sendall(A.frame(A.RESIZE, f"{size[0]} {size[1]}".encode()))
    code = None
    prev = b""  # the detach sequence may straddle two reads
    try:
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == sock.fileno():
                    data = sock.recv(65536)
                    if not data:
                        return code
                    for kind, payload in reader.feed(data):
                        if kind == A.STDOUT:
                            out.write(payload)
                            out.flush()
                        elif kind == A.STDERR:
                            err.write(payload)
                            err.flush()
                        elif kind == A.EXIT:
                            code = json.loads(payload)["code"]
                            return code
                elif fd == 0:
                    try:
                        data = os.read(0, 65536)
                    except OSError:
                        data = b""
                    if data and tty:
                        seen = prev + data
                        if DETACH_KEYS in seen:
                            before = seen[:seen.index(DETACH_KEYS)][len(prev):]
                            if before:
                                sock.sendall(A.frame(A.STDIN, before))
                            raise Detached()
                        # hold back a lone ctrl-p until we know what follows it
                        if data.endswith(DETACH_KEYS[:1]):
                            data, prev = data[:-1], DETACH_KEYS[:1]
                        else:
                            data, prev = (prev + data) if prev else data, b""
                    if data:
                        sock.sendall(A.frame(A.STDIN, data))
                    else:
                        poller.unregister(0)
                        stdin_open = False
                        sock.sendall(A.frame(A.STDIN_EOF))
                elif fd == wake_r:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    size = terminal_size(0) or terminal_size(1)
                    if size:
                        sock.sendall(A.frame(A.RESIZE, f"{size[0]} {size[1]}".encode()))
    except (BrokenPipeError, ConnectionResetError):
        return code
    finally:
        if old_wakeup is not None:
            signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
