"""Who may see the dashboard and act in it: ``Access``, HTTP Basic with the secret, CSRF."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from starlette.requests import Request

if TYPE_CHECKING:
    from asyncjobs.asgi import EndpointsHost

VIEWER = "asyncjobs.viewer"  # the scope key of the request's Viewer
CSRF_COOKIE = "asyncjobs_csrf"
CSRF_FIELD = "csrf"
REALM = 'Basic realm="asyncjobs dashboard", charset="UTF-8"'
Permission = Literal["run", "cancel"]


@dataclass(frozen=True)
class Viewer:
    """An approved viewer; ``secret`` means they signed in with it and may do anything."""

    secret: bool


class Guard:
    """Answers the dashboard's access questions for one ``Jobs``."""

    def __init__(self, jobs: EndpointsHost) -> None:
        self.jobs = jobs

    async def viewer(self, request: Request) -> Viewer | None:
        """The viewer when ``Access.dashboard`` approves or the Basic password is the secret."""
        if self._secret_matches(request):
            return Viewer(secret=True)
        access = self.jobs.access
        if access is not None and await access.approves("dashboard", request):
            return Viewer(secret=False)
        return None

    async def may(self, viewer: Viewer, permission: Permission, request: Request) -> bool:
        """Whether ``viewer`` may retry and run now (``run``) or cancel (``cancel``)."""
        if viewer.secret:
            return True
        access = self.jobs.access
        return access is not None and await access.approves(permission, request)

    def _secret_matches(self, request: Request) -> bool:
        secret = self.jobs.secret
        password = basic_password(request.headers.get("authorization", ""))
        # Compared as bytes in constant time so the answer time does not reveal the secret.
        if not secret or password is None:
            return False
        return hmac.compare_digest(password, secret.encode())


def basic_password(header: str) -> bytes | None:
    """The password of an ``Authorization: Basic`` header (any user name), or ``None``."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(b":")
    return password if colon else None


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token from its cookie, or a new one (``True``: set the cookie)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def csrf_valid(request: Request, form: Mapping[str, str]) -> bool:
    """The form carries the cookie's token, and the request comes from this dashboard's origin.

    The cookie is ``SameSite=Strict`` and other sites can neither read it nor set it, so a
    matching pair proves the form came from a page this dashboard served.
    """
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if len(cookie) < 32 or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return False
    origin = request.headers.get("origin")
    return origin is None or _same_origin(origin, request)


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")


def viewer_of(request: Request) -> Viewer:
    """The viewer the access gate approved for this request."""
    viewer: Viewer = request.scope[VIEWER]
    return viewer
