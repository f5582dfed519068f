"""The ``asyncjobs`` command line: workers, inspection and the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence

import anyio

from asyncjobs.cli import admin, dashboard, demo, parser, worker
from asyncjobs.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CliError
from asyncjobs.cli.loading import one_line
from asyncjobs.errors import StorageError

Command = Callable[[argparse.Namespace], Awaitable[int]]


COMMANDS: dict[str, Command] = {
    "run": worker.run,
    "handle-schedules": worker.handle_schedules,
    "exec": worker.exec_script,
    "jobs list": admin.list_jobs,
    "jobs show": admin.show_job,
    "jobs cancel": admin.cancel_job,
    "jobs retry": admin.retry_job,
    "demo": demo.main,
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


def _fail(message: str, code: int) -> int:
    print(f"asyncjobs: error: {message}", file=sys.stderr)
    return code
