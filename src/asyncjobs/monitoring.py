"""``GET /health`` and ``GET /metrics`` of the endpoints app (``asyncjobs.http``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asyncjobs import health
from asyncjobs.asgi import UNKNOWN_ERROR, Request, Response, Send, allowed, denied
from asyncjobs.errors import StorageError

if TYPE_CHECKING:
    from asyncjobs.asgi import EndpointsHost as Jobs

logger = logging.getLogger("asyncjobs.http")
NO_PROMETHEUS = (
    "GET /metrics needs prometheus_client: install it with pip install 'asyncjobs[prometheus]'"
)


@dataclass(frozen=True)
class TextResponse(Response):
    """A plain-text answer (the Prometheus exposition)."""

    text: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    async def __call__(self, send: Send) -> None:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(len(self.text)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.text})


async def respond(jobs: Jobs, request: Request) -> Response:
    """Answer ``/health`` (no credentials needed) or ``/metrics`` (those of ``/run``)."""
    if request.method != "GET":
        refused = {"message": f"Method {request.method} not allowed; use GET"}
        return Response(405, refused, (("allow", "GET"),))
    return await ROUTES[request.path](jobs, request)


async def health_check(jobs: Jobs, request: Request) -> Response:
    """200 ``{"status": "ok"}`` when the database answers, else 503; details with
    credentials."""
    try:
        detailed = await allowed(jobs, request)
    except Exception:
        logger.exception("Access.run failed", extra={"path": request.path})
        detailed = False
    up, body = await health.report(jobs, detailed=detailed)
    return Response(200 if up else 503, body)


async def metrics(jobs: Jobs, request: Request) -> Response:
    """The Prometheus exposition, for requests that may call ``/run``."""
    refused = await denied(jobs, request)
    if refused is not None:
        return refused
    try:
        from asyncjobs import prometheus
    except ImportError:
        return Response(501, {"message": NO_PROMETHEUS})
    try:
        await jobs.start(auto_run=False)  # opens the database if nothing did yet
        text = await prometheus.exposition(jobs.store, jobs.clock())
    except StorageError:
        logger.exception("Could not read the job counts for /metrics")
        return Response(503, {"message": UNKNOWN_ERROR})
    return TextResponse(200, {}, text=text, content_type=prometheus.CONTENT_TYPE)


Route = Callable[["Jobs", Request], Awaitable[Response]]
ROUTES: dict[str, Route] = {"/health": health_check, "/metrics": metrics}
