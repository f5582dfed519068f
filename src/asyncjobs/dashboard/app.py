"""The dashboard's ASGI app: the access gate in front of its pages, actions and assets."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from asyncjobs.dashboard import actions, pages
from asyncjobs.dashboard.guard import VIEWER, Guard
from asyncjobs.dashboard.host import Dashboard
from asyncjobs.dashboard.query import BadFilter
from asyncjobs.dashboard.render import Renderer, load_assets
from asyncjobs.errors import StorageError
from asyncjobs.http import serve_lifespan

if TYPE_CHECKING:
    from asyncjobs.dashboard.host import DashboardHost

logger = logging.getLogger(__name__)

SIGN_IN = "Sign in with the dashboard's password (the Jobs secret), or ask for access."
Handler = Callable[[Dashboard, Request], Awaitable[Response]]


class DashboardApp:
    """The ASGI app returned by ``Jobs.dashboard_app()``.

    Every request must pass :class:`Guard` first (401 otherwise). Served on its own, it also
    answers the lifespan protocol by starting and stopping ``jobs``; mounted in a framework,
    the framework's lifespan does that.
    """

    def __init__(self, jobs: DashboardHost) -> None:
        self.jobs = jobs
        self.guard = Guard(jobs)
        self.renderer = Renderer(load_assets())
        self.parts = Dashboard(jobs, self.guard, self.renderer)
        self.router = Router(routes=self._routes(), default=self._default)

    def _routes(self) -> list[Route]:
        get, post = ["GET", "HEAD"], ["POST"]
        return [
            Route("/", self._handle(pages.overview), methods=get),
            Route("/jobs", self._handle(pages.job_list), methods=get),
            Route("/jobs/{id:int}", self._handle(pages.job_page), methods=get),
            Route("/schedules", self._handle(pages.schedules), methods=get),
            Route("/jobs/{id:int}/{action:str}", self._handle(actions.on_one), methods=post),
            Route("/jobs/{action:str}", self._handle(actions.on_matching), methods=post),
            Route("/static/{name:str}", self._static, methods=get),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(self.jobs, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        try:
            viewer = await self.guard.viewer(request)
        except Exception:
            logger.exception("Access.dashboard failed", extra={"path": request.url.path})
            viewer = None
        if viewer is None:
            await self.renderer.refused(request, 401, SIGN_IN)(scope, receive, send)
            return
        scope[VIEWER] = viewer
        await self.router(scope, receive, send)

    def _handle(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if not self.jobs.store.is_open:
                    await self.jobs.start(auto_run=False)
                return await handler(self.parts, request)
            except BadFilter as exc:
                return self.renderer.refused(request, 400, str(exc))
            except StorageError as exc:
                logger.warning(
                    "Dashboard request failed: %s", exc, extra={"path": request.url.path}
                )
                return self.renderer.refused(request, 503, "The database did not answer.")

        return endpoint

    async def _static(self, request: Request) -> Response:
        asset = self.renderer.assets.get(request.path_params["name"])
        if asset is None:
            return self._not_found(request)
        cache = "private, max-age=31536000, immutable" if request.query_params.get("v") else ""
        headers = {"cache-control": cache or "no-cache", "x-content-type-options": "nosniff"}
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    def _not_found(self, request: Request) -> Response:
        return self.renderer.refused(request, 404, f"Nothing here: {request.url.path}")

    async def _default(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._not_found(Request(scope, receive))(scope, receive, send)
