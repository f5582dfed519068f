"""``python manage.py asyncjobs ...``: the whole ``asyncjobs`` command line, Django set up.

Every argument is passed through to the command line (``manage.py asyncjobs run --cron "* * *
* *"``, ``call_command("asyncjobs", "jobs", "list", "--json")``); ``--app`` defaults to
``settings.ASYNCJOBS["JOBS"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from asyncjobs import cli
from asyncjobs.integrations.django import bridge
from asyncjobs.integrations.django.loading import SETTING, _settings, load_jobs

TARGET_OPTIONS = ("--app", "--database-url")


class PassThrough(CommandParser):  # type: ignore[misc]
    """Django's own options at their defaults; every argument goes to the command line."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        options = super().parse_args([], namespace)
        options.args = list(args or [])
        return options


class Command(BaseCommand):  # type: ignore[misc]
    help = "Run, schedule and inspect jobs: the asyncjobs command line (see `asyncjobs --help`)."
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        kwargs.setdefault("add_help", False)  # --help goes to the command line too
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = PassThrough  # Django's options, parsed our way
        return parser

    def run_from_argv(self, argv: list[str]) -> NoReturn:
        # The command line prints its own one-line errors and sets the exit status.
        sys.exit(self.run_cli(argv[2:]))

    def handle(self, *args: str, **options: Any) -> None:
        code = self.run_cli(args)
        if code:
            raise CommandError(
                f"asyncjobs {' '.join(args)} exited with status {code}", returncode=code
            )

    def run_cli(self, args: Sequence[str]) -> int:
        argv = [*default_app(args), *args]
        jobs_spec = argv[1] if argv[:1] == ["--app"] else None
        if jobs_spec:
            _release(jobs_spec)
        out, err = _stream(self.stdout), _stream(self.stderr)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                return cli.main(argv)
        finally:
            connections.close_all()


def _release(spec: str) -> None:
    """Let the command line open the ``Jobs`` on its own loop, if this process has it open."""
    try:
        jobs = load_jobs(spec)
    except (ValueError, ImportError):
        return  # not loadable: the command line says why, in one line
    bridge.release(jobs)


def default_app(args: Sequence[str]) -> list[str]:
    """``["--app", spec]`` from the settings, unless ``args`` name a target themselves."""
    if any(arg.split("=")[0] in TARGET_OPTIONS for arg in args):
        return []
    spec = _settings().get("JOBS")
    if spec is None:
        return []
    if not isinstance(spec, str):
        raise CommandError(
            f'settings.{SETTING}["JOBS"] is a Jobs object; name it as "module:attr" '
            "for the command, or pass --app module:attr"
        )
    return ["--app", spec]


def _stream(wrapper: Any) -> Any:
    """The stream under Django's ``OutputWrapper``, which adds a newline to every write."""
    return getattr(wrapper, "_out", wrapper)
