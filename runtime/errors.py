"""Errors and the exit codes docker gives for them (mapped once, at the CLI edge)."""
from __future__ import annotations


def one_line(msg: str) -> str:
    """Messages often echo what the user typed; control characters would break them over lines."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in msg)


MAX_MESSAGE = 1000  # characters: an error is one terminal-sized line, whatever it quotes
_KEEP = 40          # of a long quoted value: this many characters from its start, 8 from its end


def bounded(msg: str, limit: int = MAX_MESSAGE) -> str:
    """One line of at most `limit` characters: long quoted values (a tar member's name, a path
    from a file) are cut to their ends with an ellipsis first, then the line itself if need be."""
    import re
    if len(msg) > limit:
        msg = re.sub(r"'[^'\n]{%d,}'|\"[^\"\n]{%d,}\"" % (_KEEP + 12, _KEEP + 12),
                     lambda m: m.group(0)[:_KEEP + 1] + "..." + m.group(0)[-9:], msg)
    msg = one_line(msg[:limit * 4])   # escaping can only lengthen what survives the cut below
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


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
