"""The failures the command line reports as one line on stderr, with their exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: how command-line tools end when their reader left


class CliError(Exception):
    """A problem the user can fix (bad app, unknown job, unreachable database): one line."""

    exit_code = EXIT_FAILURE


class UsageError(CliError):
    """The command line itself is wrong: unknown option, bad value, missing argument."""

    exit_code = EXIT_USAGE


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line; a group of one exception is described by that one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
