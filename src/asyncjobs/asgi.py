"""The ASGI plumbing the endpoints share: requests, responses, and who may call them."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

from asyncjobs.definitions import DEFAULT_STOP_TIMEOUT

if TYPE_CHECKING:
    from datetime import datetime

    from asyncjobs.definitions import Access, Task, Workflow
    from asyncjobs.models import RunResult, ScheduleResult
    from asyncjobs.storage import Store

logger = logging.getLogger("asyncjobs.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("asyncjobs.http")


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

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    async def start(self, auto_run: bool = True) -> None: ...

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


async def denied(jobs: EndpointsHost, request: Request) -> Response | None:
    """``None`` when the request may call ``/run``, else the 401 (or 500) to answer."""
    try:
        if await allowed(jobs, request):
            return None
    except Exception:
        logger.exception("Access.run failed", extra={"path": request.path})
        return Response(500, {"message": UNKNOWN_ERROR})
    expected = EXPECTED_CREDENTIALS[bool(jobs.secret), bool(jobs.access and jobs.access.run)]
    return Response(401, {"message": UNAUTHORIZED + expected}, (("www-authenticate", "Bearer"),))
