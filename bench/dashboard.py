"""How fast the dashboard's pages answer with 1,000,000 jobs in the table, on both backends.

    PYTHONPATH=src python bench/dashboard.py [--backend sqlite|postgres|both] [--rows N]
                                             [--repeat N] [--postgres-url URL] [--write]

Each page is requested through the dashboard's ASGI app in process (routing, access check,
queries, template), after two warm-up requests; the median and the slowest of ``--repeat``
requests are printed. ``--write`` puts the table into ``bench/RESULTS.md`` under
"## Dashboard pages". The jobs are described in ``dashboard_data.py``. On PostgreSQL the run
creates its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import dashboard_data
import httpx
import machine
from sqlalchemy.engine import make_url

import asyncjobs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
HEADING = "## Dashboard pages"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SECRET = "bench"
BUDGET_MS = 100.0
NOTES = """\
How the pages stay bounded: every count stops at 10,000 matching rows and is read from an index
(queued, waiting and processing from the runnable index; completed, failed and cancelled from a
partial index per queue each; a queue alone from all four, as every job is in exactly one;
slugs from their own). A filter's parts (status with queue, queue, slug) are counted first and
the smallest leads; up to 10,000 matches are read as ids through it and the page is cut from
them, while more are found by walking the primary key from the newest end. The overview is one
statement of six parts per queue, so it grows with the number of queues. On PostgreSQL the
dashboard asks for custom plans: the generic plan a prepared statement switches to after five
runs scans the table for a capped count. Not covered by these figures: a filter whose every
part matches 10,000+ jobs but whose combination matches few reads all of the leading part (the
failed send-email row reads the 20,000 failed jobs), and a dense filter whose matches are all
old walks far before it fills a page. After the bulk load the SQLite WAL is checkpointed and
the PostgreSQL table vacuumed and checkpointed, as a table that has been running a while is.
The machine was shared (see the load average)."""


async def noop(**_: Any) -> None:
    return None


async def failing(*, input: dict[str, Any], tasks: Any, inline_task: Any) -> None:
    await tasks["send-email"]("welcome", input={"to": "ada@example.com"})
    await inline_task("charge", task=_decline, input={"order": 7})


async def _decline(*, input: dict[str, Any]) -> None:
    raise ValueError(f"card declined for order {input['order']}")


def make_jobs(url: str) -> asyncjobs.Jobs:
    """Every slug of the data, two with schedules; no autoRun: nothing runs meanwhile."""
    tasks = [asyncjobs.Task(slug, noop) for slug in dashboard_data.TASKS]
    tasks[0] = asyncjobs.Task("send-email", noop, schedule=asyncjobs.Schedule("*/5 * * * *"))
    workflows = [asyncjobs.Workflow(slug, noop) for slug in dashboard_data.WORKFLOWS[1:]]
    workflows.append(asyncjobs.Workflow(dashboard_data.WORKFLOWS[0], failing, queue="onboarding"))
    return asyncjobs.Jobs(
        tasks=tasks, workflows=workflows, database_url=url, secret=SECRET, auto_run=[]
    )


def pages(rows: int, failed_id: int) -> list[tuple[str, str, dict[str, str]]]:
    live = {"X-Asyncjobs-Live": "1"}
    return [
        ("overview (4 queues)", "/", {}),
        ("overview, live update", "/", live),
        ("job list, newest", "/jobs", {}),
        ("job list, live update", "/jobs", live),
        ("job list, a page in the middle", f"/jobs?before={rows // 2}", {}),
        ("job list, status failed", "/jobs?status=failed", {}),
        ("job list, status queued", "/jobs?status=queued", {}),
        ("job list, status processing", "/jobs?status=processing", {}),
        ("job list, status cancelled", "/jobs?status=cancelled", {}),
        ("job list, queue reports", "/jobs?queue=reports", {}),
        ("job list, a queue of one job", "/jobs?queue=onboarding", {}),
        ("job list, a queue of no jobs", "/jobs?queue=nothing", {}),
        ("job list, completed, a slug of no jobs", "/jobs?status=completed&slug=nobody", {}),
        ("job list, completed on reports", "/jobs?status=completed&queue=reports", {}),
        ("job list, slug import-csv", "/jobs?slug=import-csv", {}),
        ("job list, failed send-email", "/jobs?status=failed&slug=send-email", {}),
        ("job list, one id", f"/jobs?id={rows // 3}", {}),
        ("job page, failed workflow", f"/jobs/{failed_id}", {}),
        ("schedules", "/schedules", {}),
    ]


async def measure(url: str, rows: int, repeat: int) -> dict[str, tuple[float, float]]:
    jobs = make_jobs(url)
    async with jobs.lifespan(auto_run=False):
        job = await jobs.queue(workflow="onboard-user", input={"email": "ada@example.com"})
        await jobs.run(queue=job.queue)
        transport = httpx.ASGITransport(app=jobs.dashboard_app())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", auth=("bench", SECRET)
        ) as http:
            return {
                label: await _time(http, path, headers, repeat)
                for label, path, headers in pages(rows, job.id)
            }


async def _time(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], repeat: int
) -> tuple[float, float]:
    spent = []
    for attempt in range(repeat + 2):
        started = time.perf_counter()
        answer = await http.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        if attempt >= 2:
            spent.append(elapsed)
    return statistics.median(spent), max(spent)


@asynccontextmanager
async def sqlite_database(rows: int) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="asyncjobs-bench-dashboard-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'jobs.db'}"
        await _create_schema(url)
        await dashboard_data.fill_sqlite(url, rows, datetime.now(UTC))
        yield url


@asynccontextmanager
async def postgres_database(server: str, rows: int) -> AsyncIterator[str]:
    name = f"asyncjobs_bench_dashboard_{uuid.uuid4().hex[:8]}"
    admin = _dsn(server)
    await _admin(admin, f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        await _create_schema(url)
        visible = await dashboard_data.fill_postgres(_dsn(url), rows, datetime.now(UTC))
        print(f"postgres: {visible:.0%} of the table's pages all-visible", file=sys.stderr)
        yield url
    finally:
        await _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _create_schema(url: str) -> None:
    async with asyncjobs.Jobs(database_url=url, auto_run=[]).lifespan(auto_run=False):
        pass


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    backends = list(results)
    header = "| Page | " + " | ".join(f"{names[b]} median (slowest)" for b in backends) + " |"
    lines = [header, "|---" * (len(backends) + 1) + "|"]
    labels = next(iter(results.values())).keys()
    for label in labels:
        cells = [f"{results[b][label][0]:.1f} ms ({results[b][label][1]:.0f})" for b in backends]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    worst = max(median for found in results.values() for median, _ in found.values())
    verdict = "met" if worst < BUDGET_MS else "missed"
    lines.append("")
    lines.append(f"Slowest median: {worst:.1f} ms; budget {BUDGET_MS:.0f} ms per page: {verdict}.")
    return "\n".join(lines)


def write(text: str, results: Path) -> None:
    """Replace (or append) the section under ``HEADING``, keeping everything else."""
    current = results.read_text() if results.exists() else ""
    start = current.find(HEADING)
    if start < 0:
        results.write_text(current.rstrip() + "\n\n" + text + "\n")
        return
    end = current.find("\n## ", start + len(HEADING))
    rest = "\n" + current[end:].lstrip("\n") if end >= 0 else ""
    results.write_text(current[:start] + text + "\n" + rest)


async def main(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = {}
    for backend in backends:
        started = time.perf_counter()
        if backend == "sqlite":
            database = sqlite_database(args.rows)
        else:
            database = postgres_database(args.postgres_url, args.rows)
        async with database as url:
            filled = time.perf_counter() - started
            print(f"{backend}: {args.rows:,} jobs generated in {filled:.1f} s", file=sys.stderr)
            results[backend] = await measure(url, args.rows, args.repeat)
    text = table(results)
    print(text)
    if args.write:
        write(_section(text, args), args.results)
    return 0


def _section(text: str, args: argparse.Namespace) -> str:
    facts = (
        f"Machine: {os.cpu_count()} cores ({machine.cpu_model()}); asyncjobs {machine.commit()}; "
        f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return (
        f"{HEADING}\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python bench/dashboard.py`: "
        f"{args.rows:,} jobs in the table (see `bench/dashboard_data.py`), each page requested "
        f"through the dashboard's ASGI app in process, median of {args.repeat} requests after "
        f"two warm-ups (the slowest in brackets). {facts}\n\n{text}\n\n{NOTES}"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ASYNCJOBS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )
    parser.add_argument("--write", action="store_true", help="update the results file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="default: %(default)s")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
