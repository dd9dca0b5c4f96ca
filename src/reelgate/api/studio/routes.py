"""The studio's page and static files.

The page is a shell (one Jinja2 template); `static/studio.js` does the rest
through the public API, with the token the person pastes kept in the
browser's localStorage and sent only in an `Authorization` header. The page
answers with a strict Content-Security-Policy: scripts and styles from this
server only (none inline), pictures and videos also from where asset links
point, requests to this server only, no form submissions, no framing.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from reelgate import __version__
from reelgate.api.context import ApiContext
from reelgate.config import Settings
from reelgate.domain.models import ASPECT_RATIOS, DURATIONS, RESOLUTIONS

HERE = Path(__file__).parent
STATIC_ROUTE = "/studio/static"
PAGES = ("/", "/studio")

_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:*]+$")


def origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of an http(s) URL (no credentials, no path), as
    a CSP source; None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    source = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return source if _HOST.match(source.split("://", 1)[1]) else None


def asset_origins(settings: Settings, sample_link: str | None) -> list[str]:
    """Where asset links may point: the public base URL, the bucket's public
    URL and endpoint, and the origin of a link the storage really makes
    (a presigned S3 link's host)."""
    candidates = (
        settings.public_base_url,
        settings.s3_public_base_url,
        settings.s3_endpoint_url,
        sample_link,
    )
    return list(dict.fromkeys(o for o in map(origin, candidates) if o))


def content_security_policy(origins: list[str]) -> str:
    assets = "".join(f" {o}" for o in origins)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{assets}",
            f"media-src 'self' blob:{assets}",
            "connect-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _sample_link(ctx: ApiContext) -> str | None:
    """A link the storage would give for a video, to learn its host; an
    object store that cannot sign one now (no credentials yet) gives none."""
    try:
        return ctx.url_for("studio-probe/video.mp4")
    except Exception:  # any storage failure: the settings' origins still apply
        return None


def _fingerprint(directory: Path) -> str:
    """Changes whenever a static file does, so browsers fetch the new one."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


class StudioStatic(StaticFiles):
    """The studio's files, never sniffed as another type; the page links
    them with a fingerprint, so they may be cached for long."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["x-content-type-options"] = "nosniff"
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["cache-control"] = (
            "public, max-age=31536000, immutable" if versioned else "no-cache"
        )
        return response


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    headers = {
        "content-security-policy": content_security_policy(
            asset_origins(ctx.settings, _sample_link(ctx))
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }
    page_context: dict[str, Any] = {
        "version": __version__,
        "fingerprint": _fingerprint(HERE / "static"),
        "aspect_ratios": list(ASPECT_RATIOS),
        "resolutions": list(RESOLUTIONS),
        "durations": list(DURATIONS),
        "defaults": {
            "aspect_ratio": ctx.settings.default_aspect_ratio,
            "resolution": ctx.settings.default_resolution,
            "duration": ctx.settings.default_duration,
        },
    }

    async def page(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return templates.TemplateResponse(
            request, "index.html", {**page_context, "base": base}, headers=headers
        )

    for path in PAGES:
        router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)
    return router


def install(app: FastAPI, ctx: ApiContext) -> None:
    """The page at `/` and `/studio`, its files under `/studio/static/`."""
    app.include_router(build_router(ctx))
    app.mount(STATIC_ROUTE, StudioStatic(directory=HERE / "static"), name="studio-static")
