"""A recording stand-in for RealSyscalls, so the init checklist can be unit tested without root."""
from __future__ import annotations


class ExecCalled(Exception):
    """Raised by the fake execvpe so a test can see the final state."""


class FakeSyscalls:
    def __init__(self, exec_error: OSError | None = None, files: dict | None = None):
        self.calls: list[tuple] = []
        self.exec_error = exec_error
        self.files = files or {}

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name, *args))
        return record

    def _fd(self, name, *args):
        self.calls.append((name, *args))
        return 1000 + len(self.calls)  # a made-up fd, only ever handed back to this fake

    def open_tree_clone(self, *args):
        return self._fd("open_tree_clone", *args)

    def openpty(self):
        self.calls.append(("openpty",))
        import os
        return os.openpty()

    def execvpe(self, file, args, env):
        self.calls.append(("execvpe", file, list(args), dict(env)))
        if self.exec_error:
            raise self.exec_error
        raise ExecCalled()

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]
