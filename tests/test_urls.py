"""The database URL forms ``Jobs(database_url=...)`` accepts, and the one-line error for others."""

from __future__ import annotations

from pathlib import Path

import pytest

import asyncjobs

SUPPORTED = "postgresql://, postgres://, postgresql+asyncpg://, sqlite:/// or sqlite+aiosqlite:///"


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("postgresql://u@db:5432/app", "postgresql+asyncpg://u@db:5432/app"),
        ("postgres://u:pw@db/app", "postgresql+asyncpg://u:pw@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///jobs.db", "sqlite+aiosqlite:///jobs.db"),
        ("sqlite:////var/lib/jobs.db", "sqlite+aiosqlite:////var/lib/jobs.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("sqlite+aiosqlite:///jobs.db", "sqlite+aiosqlite:///jobs.db"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
    ],
)
def test_common_url_forms_mean_the_async_drivers(given: str, meant: str) -> None:
    assert asyncjobs.Jobs(database_url=given).database_url == meant


def test_the_environment_url_is_read_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCJOBS_DATABASE_URL", "postgres://u@db/app")
    assert asyncjobs.Jobs().database_url == "postgresql+asyncpg://u@db/app"


@pytest.mark.parametrize(
    "given",
    [
        "foo",
        "",
        "mysql://u@db/app",
        "postgresql+psycopg://u@db/app",
        "sqlite+pysqlite:///x.db",
        "sqlite:/x.db",
        "sqlite://host/x.db",
        "http://example.com",
    ],
)
def test_other_forms_are_a_one_line_value_error_naming_the_supported_ones(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        asyncjobs.Jobs(database_url=given)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(given) in message
    assert SUPPORTED in message


def test_the_error_hides_a_password() -> None:
    with pytest.raises(ValueError) as caught:
        asyncjobs.Jobs(database_url="mysql://user:s3cret@db/app")
    assert "s3cret" not in str(caught.value)
    assert "mysql://user:***@db/app" in str(caught.value)


def test_a_url_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="database_url must be a str"):
        asyncjobs.Jobs(database_url=5)  # type: ignore[arg-type]


async def noop() -> dict[str, bool]:
    return {"ran": True}


async def _queue_and_run(url: str) -> asyncjobs.RunResult:
    jobs = asyncjobs.Jobs(tasks=[asyncjobs.Task("noop", noop)], database_url=url, auto_run=[])
    async with jobs.lifespan(auto_run=False):
        await jobs.queue(task="noop")
        return await jobs.run()


async def test_a_plain_sqlite_url_runs_jobs_on_aiosqlite(tmp_path: Path) -> None:
    result = await _queue_and_run(f"sqlite:///{tmp_path / 'plain.db'}")
    assert list(result.job_status.values()) == ["success"]
    assert (tmp_path / "plain.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_a_plain_postgresql_url_runs_jobs_on_asyncpg(
    scheme: str, postgres_database: str
) -> None:
    url = postgres_database.replace("postgresql+asyncpg://", f"{scheme}://", 1)
    result = await _queue_and_run(url)
    assert list(result.job_status.values()) == ["success"]
