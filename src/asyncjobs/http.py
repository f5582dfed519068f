"""The HTTP endpoints ``GET /run`` and ``GET /handle-schedules`` as a framework-free ASGI app."""

from __future__ import annotations

import difflib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

from asyncjobs.checks import check_queue
from asyncjobs.config import DEFAULT_LIMIT, DEFAULT_QUEUE, DEFAULT_STOP_TIMEOUT

if TYPE_CHECKING:
    from asyncjobs.config import Access, Task, Workflow
    from asyncjobs.models import RunResult, ScheduleResult

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)


class EndpointsHost(Protocol):
    """What the endpoints need from the ``Jobs`` they serve."""

    @property
    def secret(self) -> str | None: ...

    @property
    def access(self) -> Access | None: ...

    @property
    def tasks(self) -> Mapping[str, Task]: ...

    @property
    def workflows(self) -> Mapping[str, Workflow]: ...

    async def handle_schedules(self, *, queue: str, all_queues: bool) -> ScheduleResult: ...

    async def run(self, *, queue: str, limit: int, all_queues: bool, silent: Any) -> RunResult: ...

    def lifespan(
        self, auto_run: bool = True, stop_timeout: float = DEFAULT_STOP_TIMEOUT
    ) -> AbstractAsyncContextManager[Any]: ...


SUCCESS = "Success"
UNAUTHORIZED = "Unauthorized: "
EXPECTED_CREDENTIALS = {
    (True, True): "send the secret as 'Authorization: Bearer <secret>', "
    "or a request that Access.run approves.",
    (True, False): "send the secret as 'Authorization: Bearer <secret>'.",
    (False, True): "Access.run did not approve this request.",
    (False, False): "every request is refused until Jobs(secret=...) or Access(run=...) "
    "is configured.",
}
UNKNOWN_ERROR = "An unknown error has occurred."
NO_JOBS = "No jobs to run."
NO_SCHEDULES = "Cannot handle schedules because no tasks or workflows with schedules are defined."
MAX_LIMIT = 10_000
PARAMETERS = ("queue", "limit", "allQueues", "disableScheduling", "silent")
FLAGS = {"true": True, "false": False}


class Address(NamedTuple):
    """The client's address, as the ASGI ``scope["client"]`` gives it."""

    host: str
    port: int


class Headers(Mapping[str, str]):
    """Request headers by case-insensitive name; a repeated header gives its first value."""

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self.raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]

    def __getitem__(self, name: str) -> str:
        for key, value in self.raw:
            if key == name.lower():
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self.raw))

    def __len__(self) -> int:
        return len(dict(self.raw))

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.raw if key == name.lower()]


class Request:
    """What ``Access.run`` receives: ``headers``, ``query_params``, ``client`` and the ``scope``.

    Attributes:
        scope: the ASGI connection scope.
        method: the HTTP method.
        path: the path below the point where the endpoints are mounted (``/run``), taken
            from the scope's ``path`` and ``root_path`` unless given.
        headers: a case-insensitive mapping.
        query_params: the query string as a mapping (a repeated name gives its last value).
        client: ``Address(host, port)`` or ``None``.
    """

    def __init__(self, scope: Scope, path: str | None = None) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET")
        self.path = route_path(scope) if path is None else path
        self.headers = Headers(scope.get("headers") or [])
        query = scope.get("query_string", b"").decode("latin-1")
        self.query_items = parse_qsl(query, keep_blank_values=True)
        self.query_params: Mapping[str, str] = dict(self.query_items)
        client = scope.get("client")
        self.client = Address(*client) if client else None


def route_path(scope: Scope) -> str:
    """``scope["path"]`` without the ``root_path`` the app is mounted under (ASGI spec)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


@dataclass(frozen=True)
class Response:
    """A JSON answer."""

    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def content(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    async def __call__(self, send: Send) -> None:
        content = self.content()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"cache-control", b"no-store"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


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


async def allowed(jobs: EndpointsHost, request: Request) -> bool:
    """True when the request carries the secret as a bearer token or ``Access.run`` says
    ``True``."""
    if jobs.secret and _bearer_matches(request.headers.get("authorization", ""), jobs.secret):
        return True
    return jobs.access is not None and await jobs.access.approves("run", request)


def _bearer_matches(header: str, secret: str) -> bool:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    # Compared as bytes in constant time so the answer time does not reveal the secret.
    return hmac.compare_digest(token.strip().encode("latin-1"), secret.encode())


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


async def respond(jobs: EndpointsHost, request: Request) -> Response:
    """Answer one request: 404, 405, 401 (nothing runs), 400, or the endpoint's answer."""
    endpoint = ENDPOINTS.get(request.path)
    if endpoint is None:
        return Response(404, {"message": f"Not found: {request.path}"})
    if request.method != "GET":
        refused = {"message": f"Method {request.method} not allowed; use GET"}
        return Response(405, refused, (("allow", "GET"),))
    denied = await _denied(jobs, request)
    if denied is not None:
        return denied
    try:
        params = parse_params(request.query_items)
    except BadParameter as exc:
        return Response(400, {"message": str(exc)})
    return await endpoint(jobs, params)


async def _denied(jobs: EndpointsHost, request: Request) -> Response | None:
    try:
        if await allowed(jobs, request):
            return None
    except Exception:
        logger.exception("Access.run failed", extra={"path": request.path})
        return Response(500, {"message": UNKNOWN_ERROR})
    expected = EXPECTED_CREDENTIALS[bool(jobs.secret), bool(jobs.access and jobs.access.run)]
    return Response(401, {"message": UNAUTHORIZED + expected}, (("www-authenticate", "Bearer"),))


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
