"""The example Django project, set up in the test process on SQLite and, when the test server
is there, on PostgreSQL too (a second database alias, ``"postgres"``).

Django's settings are global to a process, so every in-process Django test uses this one
configuration; each backend has its own ``Jobs`` object on its own database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import asyncjobs
from asyncjobs.integrations.django import bridge, task_runner

POSTGRES_ENV = "ASYNCJOBS_TEST_POSTGRES_URL"
FOLDER = Path(tempfile.mkdtemp(prefix="asyncjobs-django-"))
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
SQLITE_URL = f"sqlite:///{FOLDER / 'site.sqlite3'}"
POSTGRES_NAME = f"asyncjobs_django_{uuid.uuid4().hex[:10]}"
ALIASES = {"sqlite": "default", "postgres": "postgres"}


def postgres_url() -> str | None:
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        return None
    base, _, _ = server.rpartition("/")
    return f"{base}/{POSTGRES_NAME}"


async def plain() -> None:
    """An asyncjobs task of its own, beside the Django tasks."""


def make_jobs(url: str, **options: Any) -> asyncjobs.Jobs:
    options.setdefault("tasks", [asyncjobs.Task("plain", plain)])
    options.setdefault("workflows", [task_runner(retries=1)])
    return asyncjobs.Jobs(
        database_url=url, auto_run=[], delete_job_on_complete=True, secret="s", **options
    )


sqlite_jobs = make_jobs(SQLITE_URL)
postgres_jobs = make_jobs(postgres_url() or "postgresql://unused/unused")
JOBS = {"sqlite": "tests.django_site:sqlite_jobs", "postgres": "tests.django_site:postgres_jobs"}


def configure() -> None:
    """Configure and set up Django once per process (a no-op afterwards)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    from integrations.django import settings as example
    from integrations.django.database import django_database

    values = {name: getattr(example, name) for name in dir(example) if name.isupper()}
    databases = {"default": django_database(SQLITE_URL)}
    url = postgres_url()
    if url:
        databases["postgres"] = django_database(url)
    values.update(
        DATABASES=databases,
        ALLOWED_HOSTS=["app.test", "testserver"],
        ASYNCJOBS={"JOBS": JOBS["sqlite"], "PREFIX": "/api/jobs"},
        TASKS={
            "default": {
                "BACKEND": "asyncjobs.integrations.django.TasksBackend",
                "QUEUES": ["default", "emails"],
            }
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast logins
    )
    settings.configure(**values)
    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client records templates and their context


configure()

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
_prepared: set[str] = set()


@dataclass
class Site:
    """One backend of the project: its Django alias and its ``Jobs``."""

    backend: str
    alias: str
    jobs: asyncjobs.Jobs

    @property
    def spec(self) -> str:
        return JOBS[self.backend]

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``await fn(...)`` on the loop the ``Jobs`` lives on, from sync test code."""
        return bridge.call(self.jobs, fn, *args, **kwargs)

    def run(self) -> asyncjobs.RunResult:
        return self.call(self.jobs.run)

    def job(self, id: int | str) -> asyncjobs.Job:
        job = self.call(self.jobs.get, int(id))
        assert job is not None
        return job


@contextmanager
def open_site(backend: str, config: pytest.Config) -> Iterator[Site]:
    """The project on ``backend``, migrated, its tables empty, ``ASYNCJOBS`` naming its jobs."""
    from django.test import override_settings

    if backend == "postgres" and postgres_url() is None:
        if os.environ.get("ASYNCJOBS_REQUIRE_POSTGRES"):
            pytest.fail(f"ASYNCJOBS_REQUIRE_POSTGRES is set but {POSTGRES_ENV} is not")
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} to run them")
    site = Site(backend, ALIASES[backend], sqlite_jobs if backend == "sqlite" else postgres_jobs)
    _prepare(site, config)
    with override_settings(ASYNCJOBS={"JOBS": site.spec, "PREFIX": "/api/jobs"}):
        try:
            yield site
        finally:
            bridge.release(site.jobs)


def _prepare(site: Site, config: pytest.Config) -> None:
    from django.core.management import call_command
    from django.db import connections

    if site.alias not in _prepared:
        if site.backend == "postgres":
            _create_postgres_database(config)
        call_command("migrate", database=site.alias, verbosity=0)
        _prepared.add(site.alias)
    site.call(site.jobs.get, 1)  # opens the store, which creates asyncjobs' tables
    with connections[site.alias].cursor() as cursor:
        for table in ("asyncjobs_jobs", "asyncjobs_schedules", "example_order"):
            cursor.execute(f"DELETE FROM {table}")


def _create_postgres_database(config: pytest.Config) -> None:
    from tests.conftest import _admin, _in_thread

    server = os.environ[POSTGRES_ENV]
    _in_thread(_admin(server, f'CREATE DATABASE "{POSTGRES_NAME}"'))
    config.add_cleanup(lambda: _drop_postgres_database(server))  # at the session's end


def _drop_postgres_database(server: str) -> None:
    from django.db import connections

    from tests.conftest import _admin, _in_thread

    connections.close_all()
    _in_thread(_admin(server, f'DROP DATABASE IF EXISTS "{POSTGRES_NAME}" WITH (FORCE)'))
