"""The ``asyncjobs`` command line: workers, inspection and the demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

import anyio

from asyncjobs.cli import admin, dashboard, parser, serve, worker
from asyncjobs.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    CliError,
    describe,
)
from asyncjobs.cli.loading import one_line
from asyncjobs.errors import StorageError

Command = Callable[[argparse.Namespace], Awaitable[int]]


COMMANDS: dict[str, Command] = {
    "run": worker.run,
    "handle-schedules": worker.handle_schedules,
    "exec": worker.exec_script,
    "jobs list": admin.list_jobs,
    "jobs show": admin.show_job,
    "jobs queue": admin.queue_job,
    "jobs cancel": admin.cancel_job,
    "jobs retry": admin.retry_job,
    "prune": admin.prune,
    "jobs signal": admin.signal_job,
    "demo": serve.demo,
    "dashboard": dashboard.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success)."""
    try:
        args = parser.build().parse_args(argv)
        name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        return anyio.run(COMMANDS[name], args)
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except StorageError as exc:
        return _fail(f"database error: {one_line(exc)}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # anything else is still one line, never a traceback
        return _fail(describe(exc), EXIT_FAILURE)


def _detach_stdout() -> None:
    """The reader went away (``| head``): stop quietly, and keep the interpreter's final
    flush of stdout from failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _fail(message: str, code: int) -> int:
    print(f"asyncjobs: error: {message}", file=sys.stderr)
    return code
