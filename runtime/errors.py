"""Errors and the exit codes docker gives for them (mapped once, at the CLI edge)."""
from __future__ import annotations


class NsboxError(Exception):
    """nsbox itself failed: exit 125, like docker."""
    exit_code = 125


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
