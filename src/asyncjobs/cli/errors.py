"""The failures the command line reports as one line on stderr, with their exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the user can fix (bad app, unknown job, unreachable database): one line."""

    exit_code = EXIT_FAILURE


class UsageError(CliError):
    """The command line itself is wrong: unknown option, bad value, missing argument."""

    exit_code = EXIT_USAGE
