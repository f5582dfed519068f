"""The HTTP endpoints ``GET /run`` and ``GET /handle-schedules`` as a framework-free ASGI app."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from asyncjobs.asgi import (
    SUCCESS,
    UNKNOWN_ERROR,
    EndpointsHost,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    denied,
)
from asyncjobs.checks import check_queue
from asyncjobs.definitions import DEFAULT_LIMIT, DEFAULT_QUEUE, DEFAULT_STOP_TIMEOUT

logger = logging.getLogger("asyncjobs.http")

NO_JOBS = "No jobs to run."
NO_SCHEDULES = "Cannot handle schedules because no tasks or workflows with schedules are defined."
MAX_LIMIT = 10_000
PARAMETERS = ("queue", "limit", "allQueues", "disableScheduling", "silent")
FLAGS = {"true": True, "false": False}


class BadParameter(ValueError):
    """A query parameter that cannot be read; the message names it."""


@dataclass(frozen=True)
class Params:
    """The query parameters of both endpoints, validated."""

    queue: str = DEFAULT_QUEUE
    limit: int = DEFAULT_LIMIT
    all_queues: bool = False
    disable_scheduling: bool = False
    silent: bool = False


def parse_params(items: Sequence[tuple[str, str]]) -> Params:
    """Read ``queue``, ``limit``, ``allQueues``, ``disableScheduling`` and ``silent``.

    Raises:
        BadParameter: a parameter is unknown, malformed or given twice.
    """
    given: dict[str, str] = {}
    for name, value in items:
        if name not in PARAMETERS:
            raise BadParameter(_unknown(name))
        if name in given:
            raise BadParameter(f"query parameter {name!r} is given more than once")
        given[name] = value
    return Params(
        queue=_queue(given.get("queue", DEFAULT_QUEUE)),
        limit=_limit(given.get("limit")),
        all_queues=_flag(given, "allQueues"),
        disable_scheduling=_flag(given, "disableScheduling"),
        silent=_flag(given, "silent"),
    )


def _unknown(name: str) -> str:
    lowered = {known.lower(): known for known in PARAMETERS}
    close = difflib.get_close_matches(name.lower(), lowered, n=1)
    hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
    return f"unknown query parameter {name!r:.60}{hint}; use {', '.join(PARAMETERS)}"


def _queue(value: str) -> str:
    if not value.strip():
        raise BadParameter("query parameter 'queue' must not be empty")
    try:
        return check_queue(value)
    except ValueError as exc:
        raise BadParameter(f"query parameter 'queue': {exc!s:.120}") from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(MAX_LIMIT))
    if not digits or not 1 <= int(value) <= MAX_LIMIT:
        raise BadParameter(
            f"query parameter 'limit' must be a whole number from 1 to {MAX_LIMIT}, "
            f"got {value!r:.40}"
        )
    return int(value)


def _flag(given: Mapping[str, str], name: str) -> bool:
    value = given.get(name)
    if value is None:
        return False
    if value in FLAGS:
        return FLAGS[value]
    raise BadParameter(f"query parameter {name!r} must be 'true' or 'false', got {value!r:.40}")


def has_schedules(jobs: EndpointsHost) -> bool:
    """Whether any task or workflow declares a schedule; without one the endpoints skip them."""
    tasks = any(task.schedule for task in jobs.tasks.values())
    return tasks or any(flow.schedule for flow in jobs.workflows.values())


async def run_jobs(jobs: EndpointsHost, params: Params) -> Response:
    """``GET /run``: handle schedules (unless disabled), then run due jobs."""
    if not jobs.tasks and not jobs.workflows:
        return Response(200, {"message": NO_JOBS})
    try:
        if not params.disable_scheduling and has_schedules(jobs):
            await jobs.handle_schedules(queue=params.queue, all_queues=params.all_queues)
        result = await jobs.run(
            queue=params.queue,
            limit=params.limit,
            all_queues=params.all_queues,
            silent=params.silent,
        )
    except Exception:
        logger.exception("There was an error running jobs", extra={"queue": params.queue})
        failed = {"message": UNKNOWN_ERROR, "noJobsRemaining": True, "remainingJobsFromQueried": 0}
        return Response(500, failed)
    return Response(
        200,
        {
            "message": SUCCESS,
            "noJobsRemaining": result.no_jobs_remaining,
            "remainingJobsFromQueried": result.remaining_jobs_from_queried,
        },
    )


async def handle_schedules(jobs: EndpointsHost, params: Params) -> Response:
    """``GET /handle-schedules``: enqueue the due schedule ticks."""
    if not has_schedules(jobs):
        return Response(500, {"message": NO_SCHEDULES})
    try:
        result = await jobs.handle_schedules(queue=params.queue, all_queues=params.all_queues)
    except Exception:
        logger.exception("There was an error handling schedules", extra={"queue": params.queue})
        return Response(500, {"message": UNKNOWN_ERROR})
    outcomes = {
        name: [{"slug": slug, "queue": queue} for slug, queue in getattr(result, name)]
        for name in ("queued", "skipped", "errored")
    }
    return Response(200, {"message": SUCCESS, **outcomes})


Endpoint = Callable[["EndpointsHost", Params], Awaitable[Response]]
ENDPOINTS: dict[str, Endpoint] = {"/run": run_jobs, "/handle-schedules": handle_schedules}
MONITORING = frozenset({"/health", "/metrics"})


async def respond(jobs: EndpointsHost, request: Request) -> Response:
    """Answer one request: 404, 405, 401 (nothing runs), 400, or the endpoint's answer."""
    if request.path in MONITORING:  # /health and /metrics: asyncjobs.monitoring
        from asyncjobs.monitoring import respond as monitor

        return await monitor(jobs, request)
    endpoint = ENDPOINTS.get(request.path)
    if endpoint is None:
        return Response(404, {"message": f"Not found: {request.path}"})
    if request.method != "GET":
        refused = {"message": f"Method {request.method} not allowed; use GET"}
        return Response(405, refused, (("allow", "GET"),))
    unauthorized = await denied(jobs, request)
    if unauthorized is not None:
        return unauthorized
    try:
        params = parse_params(request.query_items)
    except BadParameter as exc:
        return Response(400, {"message": str(exc)})
    return await endpoint(jobs, params)


async def serve_lifespan(
    jobs: EndpointsHost, receive: Receive, send: Send, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT
) -> None:
    """Answer the ASGI lifespan protocol: start ``jobs`` at startup, stop it at shutdown."""
    started = False
    await receive()
    try:
        async with jobs.lifespan(stop_timeout=stop_timeout):
            await send({"type": "lifespan.startup.complete"})
            started = True
            await receive()
    except BaseException as exc:
        phase = "shutdown" if started else "startup"
        await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
        raise
    await send({"type": "lifespan.shutdown.complete"})


class EndpointsApp:
    """The ASGI app returned by ``Jobs.asgi_app()``.

    Serves ``GET /run`` and ``GET /handle-schedules`` relative to where it is mounted, and
    answers the lifespan protocol by starting and stopping ``jobs`` when it is served on its
    own. Mounted inside a framework (which keeps the lifespan to itself), it only serves.
    """

    def __init__(self, jobs: EndpointsHost) -> None:
        self.jobs = jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = await respond(self.jobs, Request(scope))
            await response(send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(self.jobs, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
