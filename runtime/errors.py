"""Errors and the exit codes docker gives for them (mapped once, at the CLI edge)."""
from __future__ import annotations


def one_line(msg: str) -> str:
    """Messages often echo what the user typed; control characters would break them over lines."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in msg)


class NsboxError(Exception):
    """nsbox itself failed: exit 125, like docker. The message is always one line."""
    exit_code = 125

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (one_line(args[0]), *args[1:])
        super().__init__(*args)


class NotFound(NsboxError):
    pass


class Conflict(NsboxError):
    """Name in use, illegal state transition, image in use."""


class InvalidArgument(NsboxError):
    pass


class CannotInvoke(NsboxError):
    """The command exists but cannot be run (permission denied, not executable): 126."""
    exit_code = 126


class CommandNotFound(NsboxError):
    """The command is not in the container: 127."""
    exit_code = 127


class ContainerExit(Exception):
    """Not an error: the CLI should exit with the container's own code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code
