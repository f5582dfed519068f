"""An ASGI app that traces its requests and queues a job in each, for uvicorn in its own process.

It does what OpenTelemetry's ASGI instrumentation does for a request (a SERVER span continuing
the caller's ``traceparent``) and writes every span it ends to ``OTEL_TEST_SPANS`` as a JSON
line, so the test reading them can follow the trace into the job it runs itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import asyncjobs


class JsonLines(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                line = {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": span.context.trace_id,
                    "span_id": span.context.span_id,
                    "parent_id": span.parent.span_id if span.parent else None,
                    "attributes": dict(span.attributes or {}),
                }
                out.write(json.dumps(line) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JsonLines(os.environ["OTEL_TEST_SPANS"])))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel_app")


@asyncjobs.task("welcome")
async def welcome(*, input: dict) -> None:
    return None


jobs = asyncjobs.Jobs(tasks=[welcome], database_url=os.environ["OTEL_TEST_DATABASE"], auto_run=[])
endpoints = jobs.asgi_app()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["path"] != "/signup":
        await endpoints(scope, receive, send)  # the lifespan, and a 404 for the rest
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    with tracer.start_as_current_span(
        "GET /signup", context=propagate.extract(headers), kind=trace.SpanKind.SERVER
    ):
        job = await jobs.queue(task="welcome", queue="signups")
    body = json.dumps({"id": job.id}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
