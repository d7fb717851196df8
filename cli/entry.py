"""The `nsbox` command: hand the command to the preload server if there is one, else run it here.

This module is on every command's path, so it imports only built-in modules (no click, no nsbox):
with a warm server (runtime/preload.py) a command costs an interpreter start, one connect and a
fork, instead of ~40 ms of imports. The client passes its argv, environment and stdio descriptors,
forwards the signals a terminal or a supervisor sends it, and exits with the worker's status.
Anything unusual (no server yet, a stale one, a caller in other namespaces, NSBOX_PRELOAD=0)
falls back to the ordinary in-process CLI, which also starts a server for next time.
"""
import os
import sys

# signals a user or supervisor sends the CLI; the worker handles them as the CLI would
FORWARD = (2, 15, 1, 3, 10, 12, 28, 18)  # INT TERM HUP QUIT USR1 USR2 WINCH CONT
NO_SERVER = {"login"}  # reads a password from /dev/tty, which a forked worker does not have


def _runroot(argv: list[str]) -> tuple[str | None, str | None]:
    """(runroot, verb) from the global options before the verb, or (None, None) for anything odd."""
    runroot = os.environ.get("NSBOX_RUNROOT") or None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--root", "--runroot"):
            if i + 1 >= len(argv):
                return None, None
            if a == "--runroot":
                runroot = argv[i + 1]
            i += 2
        elif a.startswith("--root="):
            i += 1
        elif a.startswith("--runroot="):
            runroot = a.split("=", 1)[1]
            i += 1
        elif a == "--debug":
            i += 1
        elif a.startswith("-"):
            return None, None  # --help, --version, a typo: the full CLI answers
        else:
            # paths.DEFAULT_RUNROOT, spelled out: importing nsbox here would cost the hot path
            return os.path.abspath(runroot or "/run/nsbox"), a
    return None, None


ABSENT, DECLINED, RESPAWN = "absent", "declined", "respawn"


def _via_server(sock_path: str, argv: list[str], verb: str) -> int | str:
    """The command's exit status, or why the server did not run it (ABSENT, DECLINED, RESPAWN)."""
    import _signal
    import _socket
    import marshal

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        s.connect(sock_path)
    except OSError:
        s.close()
        return ABSENT
    s.settimeout(10)  # a wedged server must not hang the command: nothing has run until "pid"
    worker = [0]
    pending: list[int] = []

    def forward(sig, _frame):
        if worker[0]:
            try:
                os.kill(worker[0], sig)
            except ProcessLookupError:
                pass
        else:
            pending.append(sig)
    def suspend(sig, _frame):
        # ctrl-z: stop the worker too (else it keeps drawing on the terminal), then ourselves
        if worker[0]:
            try:
                os.kill(worker[0], 19)  # SIGSTOP
            except ProcessLookupError:
                pass
        _signal.signal(20, 0)  # SIG_DFL, so that the next line stops us
        os.kill(os.getpid(), 20)
        _signal.signal(20, suspend)
        # here when resumed (fg), or at once when the kernel discarded the stop (an orphaned
        # process group): either way the worker must run again, never stay stopped under us
        if worker[0]:
            try:
                os.kill(worker[0], 18)  # SIGCONT
            except ProcessLookupError:
                pass
    old = {sig: _signal.signal(sig, forward) for sig in FORWARD}
    old[20] = _signal.signal(20, suspend)  # SIGTSTP
    stdio = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            stdio.append(fd)
        except OSError:
            pass
    msg = marshal.dumps({"op": "run", "argv": argv, "verb": verb, "env": dict(os.environ), "stdio": stdio})
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in stdio)
        s.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        while True:
            data = s.recv(1 << 16)
            if not data:
                break  # server and worker both gone without a word
            reply = marshal.loads(data)
            if "fallback" in reply:
                if os.environ.get("NSBOX_DEBUG"):
                    os.write(2, f"nsbox: preload server declined: {reply['fallback']}\n".encode())
                for sig, h in old.items():
                    _signal.signal(sig, h)
                return RESPAWN if reply.get("respawn") else DECLINED
            if "pid" in reply:
                s.settimeout(None)  # from here on, the command takes as long as it takes
                worker[0] = reply["pid"]
                for sig in pending:
                    forward(sig, None)
            if "exit" in reply:
                return reply["exit"]
    except OSError:
        if not worker[0]:
            for sig, h in old.items():
                _signal.signal(sig, h)
            return ABSENT  # nothing ran: the in-process CLI can take over
    finally:
        s.close()
    os.write(2, b"Error: the nsbox preload server went away while running the command\n")
    return 125


def _background_on_a_terminal() -> bool:
    """Started with `&` from a shell: in-process, job control stops us before we read the
    terminal; a worker in the server's session would read it regardless."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) != os.getpgrp()
    except OSError:
        return False


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("NSBOX_PRELOAD", "1") != "0" and not _background_on_a_terminal():
        runroot, verb = _runroot(argv)
        if runroot and verb not in NO_SERVER:
            code = _via_server(os.path.join(runroot, "preload.sock"), argv, verb)
            if isinstance(code, int):
                os._exit(code)
            if code != DECLINED:
                from nsbox.runtime.preload import spawn_server
                spawn_server(runroot)  # for the next command; it loads while this one runs
    if sys.flags.no_site and "site" not in sys.modules:
        import site  # the launcher skipped it (-S) for speed; click and friends live in site-packages
        site.main()
    from nsbox.cli.main import main as cli_main
    cli_main(argv)


if __name__ == "__main__":
    main()
