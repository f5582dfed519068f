"""OpenTelemetry: create/process/step spans, their links, and the metrics (in-memory SDK)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

import asyncjobs
from asyncjobs import telemetry
from tests.conftest import FakeClock, run_until_idle
from tests.servers import serve
from tests.telemetry_support import Telemetry, with_attributes

MakeJobs = Callable[..., asyncjobs.Jobs]
tracer = trace.get_tracer("tests")
failing: set[str] = set()


@asyncjobs.task("fetch")
async def fetch(*, input: dict) -> dict:
    if input.get("key") in failing:
        failing.discard(input["key"])
        raise KeyError("path")
    return {"ok": True}


@asyncjobs.task("welcome")
async def welcome(*, input: dict) -> None:
    return None


@asyncjobs.workflow("import", retries=3)
async def import_flow(*, input: dict, tasks: Any) -> None:
    await tasks.fetch("a", input={})
    await tasks.fetch("b", input={"key": input.get("key")})


@asyncjobs.workflow("child-maker")
async def child_maker(*, input: dict, jobs: asyncjobs.Jobs) -> None:
    await jobs.queue(task="fetch", queue=input["queue"])


async def test_a_job_queued_in_a_request_runs_in_the_request_trace(
    make_jobs: MakeJobs, otel: Telemetry
) -> None:
    jobs = make_jobs(tasks=[fetch], workflows=[import_flow])
    with tracer.start_as_current_span("request") as request:
        job = await jobs.queue(workflow="import", queue="traced")
    await run_until_idle(jobs, queue="traced")

    create, process = otel.span("create traced"), otel.span("process traced")
    steps = otel.spans("step fetch")
    assert create.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert create.parent is not None
    assert create.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == create.context.span_id
    assert process.context.trace_id == request.get_span_context().trace_id
    assert [s.parent.span_id for s in steps if s.parent] == [process.context.span_id] * 2
    assert [s.attributes["asyncjobs.step.id"] for s in steps] == ["a", "b"]
    for span, operation in ((create, "create"), (process, "process")):
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "asyncjobs"
        assert span.attributes["messaging.destination.name"] == "traced"
        assert span.attributes["messaging.message.id"] == str(job.id)
        assert span.attributes["messaging.operation.name"] == operation
        assert span.attributes["asyncjobs.job.slug"] == "import"
    assert process.attributes is not None and process.attributes["asyncjobs.job.attempt"] == 1


async def test_a_retry_continues_the_trace_and_restored_steps_get_no_span(
    make_jobs: MakeJobs, otel: Telemetry, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[fetch], workflows=[import_flow])
    failing.add("retry")
    await jobs.queue(workflow="import", input={"key": "retry"}, queue="retried")
    await jobs.run(queue="retried")
    first = otel.span("process retried")
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes is not None and first.attributes["error.type"] == "KeyError"
    assert first.attributes["asyncjobs.job.status"] == "retrying"
    failed_step = otel.spans("step fetch")[-1]
    assert failed_step.attributes is not None and failed_step.attributes["error.type"] == "KeyError"
    otel.exporter.clear()

    clock.advance(3600)
    await run_until_idle(jobs, queue="retried")
    second = otel.span("process retried")
    (step,) = otel.spans("step ")  # step "a" comes from the log
    assert step.attributes is not None and step.attributes["asyncjobs.step.id"] == "b"
    assert second.attributes is not None and second.attributes["asyncjobs.job.attempt"] == 2
    assert second.parent is not None and second.parent.span_id == first.parent.span_id  # type: ignore[union-attr]
    assert second.status.status_code == StatusCode.UNSET


async def test_a_job_queued_outside_any_trace_starts_its_own(
    make_jobs: MakeJobs, otel: Telemetry
) -> None:
    jobs = make_jobs(tasks=[fetch])
    await jobs.queue(task="fetch", queue="untraced")
    with tracer.start_as_current_span("runner"):  # say, a GET /run request
        await run_until_idle(jobs, queue="untraced")
    create, process = otel.span("create untraced"), otel.span("process untraced")
    assert create.parent is None
    assert process.parent is not None and process.parent.span_id == create.context.span_id


@asyncjobs.workflow("child-runner")
async def child_runner(*, run_child: Any) -> dict:
    return {"child": await run_child("c", task="fetch", queue="run-children")}


async def test_a_run_child_child_continues_its_parents_process_span(
    make_jobs: MakeJobs, otel: Telemetry
) -> None:
    jobs = make_jobs(tasks=[fetch], workflows=[child_runner])
    with tracer.start_as_current_span("request") as request:
        await jobs.queue(workflow="child-runner", queue="run-parents")
    await run_until_idle(jobs, queue="run-parents")  # suspends until its child is finished
    first = otel.span("process run-parents")
    await run_until_idle(jobs, queue="run-children")
    await run_until_idle(jobs, queue="run-parents")
    child = otel.span("process run-children")
    assert child.parent is not None and child.parent.span_id == first.context.span_id
    trace_id = request.get_span_context().trace_id
    parents = otel.spans("process run-parents")
    assert len(parents) == 2
    assert {span.context.trace_id for span in [*parents, child]} == {trace_id}


async def test_a_child_job_runs_in_its_parents_trace(make_jobs: MakeJobs, otel: Telemetry) -> None:
    jobs = make_jobs(tasks=[fetch], workflows=[child_maker])
    await jobs.queue(workflow="child-maker", input={"queue": "children"}, queue="parents")
    await run_until_idle(jobs, queue="parents")
    await run_until_idle(jobs, queue="children")
    parent, child = otel.span("process parents"), otel.span("process children")
    create = otel.span("create children")
    assert create.parent is not None and create.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id


async def test_queue_many_makes_one_create_span_per_job(
    make_jobs: MakeJobs, otel: Telemetry
) -> None:
    jobs = make_jobs(tasks=[fetch])
    created = await jobs.queue_many([{"task": "fetch", "queue": "many"}] * 3)
    spans = otel.spans("create many")
    ids = [s.attributes["messaging.message.id"] for s in spans if s.attributes]
    assert ids == [str(job.id) for job in created]
    assert len({s.context.span_id for s in spans}) == 3


async def test_finished_attempts_are_counted_and_timed(
    make_jobs: MakeJobs, otel: Telemetry, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[fetch], workflows=[import_flow])
    queue = f"counted-{uuid.uuid4().hex[:8]}"  # the SDK's sums run over the whole session
    failing.add("count")
    await jobs.queue(workflow="import", input={"key": "count"}, queue=queue)
    await jobs.queue(task="fetch", queue=queue)
    await jobs.run(queue=queue)
    clock.advance(3600)
    await run_until_idle(jobs, queue=queue)

    finished = with_attributes(
        otel.points("asyncjobs.jobs.finished"), **{"messaging.destination.name": queue}
    )
    by_status = {p.attributes["asyncjobs.job.status"]: p.value for p in finished}
    assert by_status == {"completed": 2, "retrying": 1}
    durations = with_attributes(
        otel.points("messaging.process.duration"),
        **{"messaging.destination.name": queue, "asyncjobs.job.status": "completed"},
    )
    assert [p.count for p in durations] == [2] and durations[0].sum >= 0


async def test_the_queue_depth_gauge_counts_unfinished_jobs_by_status(
    make_jobs: MakeJobs, otel: Telemetry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "DEPTH_REFRESH", 0.0)
    jobs = make_jobs(tasks=[fetch])
    await jobs.queue_many([{"task": "fetch", "queue": "deep"}] * 2)
    await jobs.queue(task="fetch", queue="deep", wait_until=clock() + timedelta(hours=1))
    otel.points("asyncjobs.queue.depth")  # a reader collects: the next run() counts
    await jobs.run(queue="elsewhere")

    points = with_attributes(
        otel.points("asyncjobs.queue.depth"), **{"messaging.destination.name": "deep"}
    )
    assert {p.attributes["asyncjobs.job.status"]: p.value for p in points} == {
        "queued": 2,
        "waiting": 1,
    }


@pytest.mark.parametrize(
    ("setup", "sinks"),
    [
        (
            'sys.modules["opentelemetry"] = None  # as if it were not installed\n'
            'sys.modules["prometheus_client"] = None',
            "telemetry.Sinks(None, False)",
        ),
        ("pass  # installed, but no provider set", "telemetry.Sinks(telemetry.sinks().otel, True)"),
    ],
    ids=["absent", "unconfigured"],
)
def test_without_an_sdk_nothing_is_traced_or_stored(tmp_path: Any, setup: str, sinks: str) -> None:
    script = f"""
import sys
{setup}
import anyio, asyncjobs
from asyncjobs import telemetry

@asyncjobs.task("noop")
async def noop(*, input): return None

async def main():
    async with asyncjobs.Jobs(tasks=[noop], database_url="sqlite+aiosqlite:///{tmp_path}/j.db",
                              auto_run=[], delete_job_on_complete=False) as jobs:
        job = await jobs.queue(task="noop")
        await jobs.run()
        row = await jobs.store.get(job.id)
        assert row["trace_context"] is None and row["completed_at"] is not None, row
    assert telemetry.sinks() == {sinks}, telemetry.sinks()

anyio.run(main)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
async def test_a_request_trace_runs_through_a_real_server_into_the_job(
    tmp_path: Path, otel: Telemetry
) -> None:
    spans_file, database = tmp_path / "spans.jsonl", f"sqlite+aiosqlite:///{tmp_path / 'j.db'}"
    env = {"OTEL_TEST_SPANS": str(spans_file), "OTEL_TEST_DATABASE": database}
    async with (
        serve("tests.otel_app:app", env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        with tracer.start_as_current_span("client") as client:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            response = await http.get("/signup", headers=headers)
        assert response.status_code == 200, server.output()
    async with asyncjobs.Jobs(tasks=[welcome], database_url=database, auto_run=[]) as jobs:
        await run_until_idle(jobs, queue="signups")  # in this process, through the database

    served = {s["name"]: s for s in map(json.loads, spans_file.read_text().splitlines())}
    request, create = served["GET /signup"], served["create signups"]
    process = otel.span("process signups")
    trace_id = client.get_span_context().trace_id
    assert request["parent_id"] == client.get_span_context().span_id
    assert (create["kind"], create["parent_id"]) == ("PRODUCER", request["span_id"])
    assert create["attributes"]["messaging.message.id"] == str(response.json()["id"])
    assert process.parent is not None and process.parent.span_id == create["span_id"]
    assert request["trace_id"] == create["trace_id"] == process.context.trace_id == trace_id
