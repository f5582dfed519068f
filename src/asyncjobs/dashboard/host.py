"""What the dashboard needs from the ``Jobs`` it shows, and the parts its handlers share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from asyncjobs.asgi import EndpointsHost
from asyncjobs.storage.dashboard import DashboardQueries

if TYPE_CHECKING:
    from asyncjobs.dashboard.guard import Guard
    from asyncjobs.dashboard.render import Renderer
    from asyncjobs.models import Job
    from asyncjobs.registry import Registry
    from asyncjobs.wake import WakeBus


class DashboardHost(EndpointsHost, Protocol):
    """The ``Jobs`` API the dashboard reads and acts through."""

    @property
    def registry(self) -> Registry: ...

    @property
    def wake(self) -> WakeBus: ...

    @property
    def auto_run(self) -> Any: ...

    async def start(self, auto_run: bool = True) -> None: ...

    async def get(self, id: int) -> Job | None: ...

    async def retry_by_id(self, id: int) -> bool: ...

    async def cancel_by_id(
        self, id: int, *, override_access: bool = True, request: Any = None
    ) -> bool: ...

    async def cancel(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        queue: str | None = None,
        override_access: bool = True,
        request: Any = None,
    ) -> int: ...


@dataclass(frozen=True)
class Dashboard:
    """What every page and action handler works with."""

    jobs: DashboardHost
    guard: Guard
    renderer: Renderer


def queries(jobs: DashboardHost) -> DashboardQueries:
    """The dashboard's statements on the database of ``jobs``."""
    return DashboardQueries(jobs.store)
