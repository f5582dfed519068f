"""Finding what the command line works on: the app's ``Jobs`` object and user scripts."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from asyncjobs.cli.errors import CliError, describe
from asyncjobs.cli.parser import APP_ENV
from asyncjobs.errors import StorageError
from asyncjobs.jobs import DATABASE_URL_ENV, Jobs
from asyncjobs.urls import hide_password

DEFAULT_ATTR = "jobs"
DJANGO_SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
SQLALCHEMY_BACKGROUND = re.compile(r"\(Background on this error at: [^)]*\)")
Script = Callable[[Jobs], Awaitable[Any]]


def app_jobs(app: str | None, command: str) -> Jobs:
    """The ``Jobs`` named by ``--app`` or ``$ASYNCJOBS_APP``; a command that runs jobs needs it."""
    spec = app or os.environ.get(APP_ENV)
    if not spec:
        raise CliError(
            f"'asyncjobs {command}' needs the app that defines your tasks: "
            f"pass --app module:attr or set {APP_ENV}"
        )
    return load_jobs(spec)


def database_jobs(app: str | None, database_url: str | None) -> Jobs:
    """For inspection: ``--database-url``, else the app, else ``$ASYNCJOBS_DATABASE_URL``."""
    if app and database_url:
        raise CliError("give either --app or --database-url, not both")
    if database_url:
        return _url_jobs(database_url)
    spec = app or os.environ.get(APP_ENV)
    if spec:
        return load_jobs(spec)
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return _url_jobs(url)
    raise CliError(
        f"no database: pass --app module:attr or --database-url URL, "
        f"or set {APP_ENV} or {DATABASE_URL_ENV}"
    )


def _url_jobs(url: str) -> Jobs:
    try:
        return Jobs(database_url=url, auto_run=[])
    except ValueError as exc:
        raise CliError(str(exc)) from None


def load_jobs(spec: str) -> Jobs:
    """Import ``module:attr`` (``attr`` defaults to ``jobs``, may be dotted) from the cwd too."""
    module_name, _, attr = spec.partition(":")
    attr = attr or DEFAULT_ATTR
    dotted = [*module_name.split("."), *attr.split(".")]
    if not all(part.isidentifier() for part in dotted):
        raise CliError(f"--app must look like module:attr, e.g. myapp:jobs; got {spec!r}")
    if os.getcwd() not in sys.path:
        # Like `python -m`: the app module usually sits in the directory the command runs in.
        sys.path.insert(0, os.getcwd())
    setup_django()
    module = _import(module_name)
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise CliError(f"module {module_name!r} has no attribute {attr!r} (from --app {spec})")
        value = getattr(value, part)
    if not isinstance(value, Jobs):
        kind = type(value).__name__
        raise CliError(f"--app {spec} is a {kind}, not an asyncjobs.Jobs object")
    return value


def setup_django() -> None:
    """``django.setup()`` when ``DJANGO_SETTINGS_MODULE`` is set, so that an app module that
    imports Django models loads (a no-op once Django is set up, as under ``manage.py``)."""
    if not os.environ.get(DJANGO_SETTINGS_ENV):
        return
    try:
        import django
        from django.apps import apps
    except ImportError:
        raise CliError(f"{DJANGO_SETTINGS_ENV} is set but Django is not installed") from None
    if apps.ready:
        return
    try:
        django.setup()
    except Exception as exc:
        setting = f"{DJANGO_SETTINGS_ENV}={os.environ[DJANGO_SETTINGS_ENV]}"
        raise CliError(f"cannot set up Django ({setting}): {describe(exc)}") from None


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise CliError(f"cannot import app module {module_name!r}: {describe(exc)}") from None


def load_script(path: str) -> Script:
    """Load a Python file and return its ``async def main(jobs)``."""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"no such script: {path}")
    spec = importlib.util.spec_from_file_location("__asyncjobs_script__", file)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {path} as a Python script")
    module = importlib.util.module_from_spec(spec)
    # Like `python script.py`: the script may import modules next to it.
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CliError(f"cannot load script {path}: {describe(exc)}") from None
    main = getattr(module, "main", None)
    if not inspect.iscoroutinefunction(main):
        raise CliError(f"{path} must define `async def main(jobs)`")
    script: Script = main
    return script


@asynccontextmanager
async def opened(jobs: Jobs) -> AsyncIterator[Jobs]:
    """``jobs`` started without timers; a database that cannot be opened is a one-line error."""
    try:
        await jobs.start(auto_run=False)
    except StorageError as exc:
        url = hide_password(jobs.database_url)
        raise CliError(f"cannot open the database {url}: {one_line(exc)}") from None
    try:
        yield jobs
    finally:
        await jobs.stop()


def one_line(exc: BaseException) -> str:
    """An error message on one line, without SQLAlchemy's link to its error catalogue."""
    return " ".join(SQLALCHEMY_BACKGROUND.sub("", str(exc)).split())
