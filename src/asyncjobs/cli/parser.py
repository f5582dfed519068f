"""The argument parser: every command, option and value check of ``asyncjobs``."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, NoReturn

from asyncjobs import cron
from asyncjobs.checks import check_queue, priority_problem
from asyncjobs.cli.errors import UsageError
from asyncjobs.definitions import DEFAULT_LIMIT, DEFAULT_QUEUE, DEFAULT_STOP_TIMEOUT
from asyncjobs.storage.filters import STATUSES

APP_ENV = "ASYNCJOBS_APP"
DEFAULT_LIST_LIMIT = 50
DEFAULT_DEMO_PORT = 8000
DEFAULT_HOST = "127.0.0.1"

DESCRIPTION = """\
Run, schedule and inspect asyncjobs jobs outside the web process.

Name your Jobs object with --app module:attr (or the ASYNCJOBS_APP environment variable);
the current directory is importable, so `--app myapp:jobs` finds myapp.py here.
Start with `asyncjobs demo` to see what the library does."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and a ``UsageError``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def cron_expression(text: str) -> cron.Cron:
    try:
        return cron.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def queue_name(text: str) -> str:
    try:
        return check_queue(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--input is not JSON ({exc}): {text!r}") from None


def aware_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01T03:00:00+02:00 or ...Z)"
        ) from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a UTC offset, e.g. {text}+00:00 or {text}Z"
        )
    return moment


def priority(text: str) -> int:
    value: object = int(text) if text.lstrip("-").isdigit() else text
    problem = priority_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return int(text)


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def build() -> Parser:
    parser = Parser(
        prog="asyncjobs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    _add_run(commands)
    _add_handle_schedules(commands)
    _add_exec(commands)
    _add_jobs(commands)
    _add_json(_command(commands, "prune", "delete finished jobs past the app's retention"))
    _add_demo(commands)
    _add_dashboard(commands)
    return parser


def _add_target(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        default=default,
        help=f"the Jobs object to use, e.g. myapp:jobs (default: ${APP_ENV})",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=default,
        help="inspect this database without an app (jobs list/show/cancel/retry only)",
    )


def _command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
    # SUPPRESS keeps a value given before the command name (`asyncjobs --app x run`).
    _add_target(sub, argparse.SUPPRESS)
    return sub


def _add_queue(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue", type=queue_name, default=DEFAULT_QUEUE, help="the queue (default: %(default)s)"
    )
    parser.add_argument("--all-queues", action="store_true", help="every queue")


def _add_repeat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cron",
        type=cron_expression,
        metavar="EXPR",
        help="repeat on this crontab schedule (5 fields, or 6 with seconds) until interrupted",
    )
    parser.add_argument(
        "--stop-timeout",
        type=seconds,
        default=DEFAULT_STOP_TIMEOUT,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, let running jobs finish this long, then release them "
        "(default: %(default)s)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _add_run(commands: Any) -> None:
    sub = _command(commands, "run", "run the jobs that are due")
    _add_queue(sub)
    sub.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        help="run at most this many jobs, in parallel (default: %(default)s)",
    )
    sub.add_argument(
        "--handle-schedules", action="store_true", help="enqueue due scheduled jobs first"
    )
    _add_repeat(sub)
    _add_json(sub)


def _add_handle_schedules(commands: Any) -> None:
    sub = _command(commands, "handle-schedules", "enqueue the jobs whose schedule is due")
    _add_queue(sub)
    _add_repeat(sub)
    _add_json(sub)


def _add_exec(commands: Any) -> None:
    sub = _command(commands, "exec", "run your script's `async def main(jobs)` with the app open")
    sub.add_argument("script", metavar="SCRIPT", help="path to a Python file")
    _add_repeat(sub)


def _add_jobs(commands: Any) -> None:
    group = commands.add_parser("jobs", help="list, show, queue, cancel, retry or signal jobs")
    actions = group.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    listing = _command(actions, "list", "list jobs, newest first")
    listing.add_argument("--queue", type=queue_name, help="only this queue")
    listing.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    listing.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIST_LIMIT,
        help="at most this many (default: %(default)s)",
    )
    _add_json(listing)
    for name, text in (
        ("show", "show one job: input, status, error and its steps"),
        ("cancel", "cancel a job that has not finished"),
        ("retry", "make a failed or cancelled job runnable again, keeping its succeeded steps"),
    ):
        sub = _command(actions, name, text)
        sub.add_argument("id", type=positive_int, metavar="ID", help="the job id")
        _add_json(sub)
    _add_jobs_queue(actions)
    _add_jobs_signal(actions)


def _add_jobs_signal(actions: Any) -> None:
    sub = _command(actions, "signal", "send a signal to a job's wait_for_signal")
    sub.add_argument("id", type=positive_int, metavar="ID", help="the job id")
    sub.add_argument("topic", metavar="TOPIC", help="the signal's topic")
    sub.add_argument(
        "--payload", type=json_value, metavar="JSON", help="the signal's payload, a JSON object"
    )
    _add_json(sub)


def _add_jobs_queue(actions: Any) -> None:
    sub = _command(actions, "queue", "queue a job of one of the app's tasks or workflows")
    sub.add_argument("slug", metavar="SLUG", help="the task or workflow")
    sub.add_argument(
        "--input", type=json_value, metavar="JSON", help="the job's input, a JSON object"
    )
    sub.add_argument(
        "--queue",
        type=queue_name,
        help="the queue (default: the workflow's own queue, else 'default')",
    )
    sub.add_argument(
        "--wait-until",
        type=aware_time,
        metavar="ISO",
        help="run it no earlier than this ISO 8601 time with an offset, e.g. 2026-05-01T03:00Z",
    )
    sub.add_argument(
        "--priority",
        type=priority,
        metavar="N",
        help="-100 to 100, higher runs first (default: the task's or workflow's own)",
    )
    sub.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="while a job queued with this key is unfinished, show that job and queue none",
    )
    _add_json(sub)


def _add_demo(commands: Any) -> None:
    sub = commands.add_parser("demo", help="see jobs, retries and schedules at work (seconds)")
    sub.add_argument(
        "--serve",
        action="store_true",
        help="keep a web app with autoRun and the dashboard running (needs asyncjobs[dashboard])",
    )
    sub.add_argument(
        "--port",
        type=port,
        default=DEFAULT_DEMO_PORT,
        help="port for --serve on 127.0.0.1 (default: %(default)s; 0 picks a free one)",
    )


def _add_dashboard(commands: Any) -> None:
    sub = _command(commands, "dashboard", "serve the dashboard of an app's jobs in a browser")
    sub.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    sub.add_argument(
        "--port",
        type=port,
        default=DEFAULT_DEMO_PORT,
        help="port to listen on (default: %(default)s; 0 picks a free one)",
    )
