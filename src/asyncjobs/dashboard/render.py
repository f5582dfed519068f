"""Rendering: the Jinja2 templates (autoescaped), live fragments, flash notes, the CSRF cookie."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from asyncjobs.dashboard import present
from asyncjobs.dashboard.guard import CSRF_COOKIE, CSRF_FIELD, REALM, csrf_token

HERE = Path(__file__).resolve().parent
VERBS = {"retry": "Retry", "run": "Run now", "cancel": "Cancel"}
LIVE_HEADER = "x-asyncjobs-live"
NOW_HEADER = "x-asyncjobs-now"  # the server's clock, which "5 s ago" is measured against
FLASH_COOKIE = "asyncjobs_flash"
NO_STORE = {"cache-control": "no-store", "vary": "X-Asyncjobs-Live, Authorization, Cookie"}
# Pages hold no third-party content; scripts and styles come from this dashboard only.
SECURITY = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True)
class Asset:
    """A file under ``static/``, served from memory with a content hash for caching."""

    body: bytes
    media_type: str
    version: str


def load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted((HERE / "static").iterdir()):
        body = path.read_bytes()
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        assets[path.name] = Asset(body, media, hashlib.sha256(body).hexdigest()[:12])
    return assets


class Renderer:
    """Renders pages with what every page needs: base path, CSRF token, flash, assets."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self.assets = assets
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(p=present, csrf_field=CSRF_FIELD, VERBS=VERBS)
        self.env.filters.update(count=present.count, pretty=present.pretty)
        # Imported once for every template, so a live block rendered alone has them too.
        self.env.globals["m"] = self.env.get_template("_macros.html").module

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """The whole page, or only its ``live`` block when the page's script polls for it."""
        token, new_token = csrf_token(request)
        flash = unquote(request.cookies.get(FLASH_COOKIE, ""))
        page = name.removesuffix(".html")
        values = {**self._common(request), "csrf": token, "flash": flash, "page": page, **context}
        template = self.env.get_template(name)
        if request.headers.get(LIVE_HEADER) and "live" in template.blocks:
            html = "".join(template.blocks["live"](template.new_context(values)))
            now = present.iso(context.get("now"))
            return HTMLResponse(html, status, headers={**NO_STORE, **SECURITY, NOW_HEADER: now})
        response = HTMLResponse(template.render(values), status, headers={**NO_STORE, **SECURITY})
        if new_token:
            self._cookie(response, request, CSRF_COOKIE, token)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=self._path(request))
        return response

    def refused(self, request: Request, status: int, message: str) -> Response:
        """A plain page for 401/403/400/404/503; 401 asks the browser for the password."""
        headers = {**NO_STORE, **SECURITY}
        if status == 401:
            headers["www-authenticate"] = REALM
        html = self.env.get_template("refused.html").render(
            {**self._common(request), "page": "refused", "status": status, "message": message}
        )
        return HTMLResponse(html, status, headers=headers)

    def redirect(self, request: Request, to: str, flash: str) -> Response:
        response = RedirectResponse(to, status_code=303, headers=NO_STORE)
        self._cookie(response, request, FLASH_COOKIE, quote(flash))
        return response

    def _common(self, request: Request) -> dict[str, Any]:
        base = base_path(request)
        versions = {name: asset.version for name, asset in self.assets.items()}
        return {"base": base, "assets": versions, "flash": "", "csrf": ""}

    def _cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            path=self._path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def _path(request: Request) -> str:
        return base_path(request) or "/"


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``/jobs``), from the ASGI ``root_path``; ``""`` at root."""
    return str(request.scope.get("root_path", "")).rstrip("/")
