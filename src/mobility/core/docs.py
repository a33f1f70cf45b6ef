"""The API's HTML documentation (Swagger UI at /docs, ReDoc at /redoc), served with its own scripts and
styles: FastAPI's default pages load them from a CDN, which fails offline and would have to be allowed
in the pages' Content-Security-Policy. The files come from the fastapi-offline package (MIT), which
ships the current Swagger UI and ReDoc bundles; only its static files are used.

Each page gets a Content-Security-Policy allowing exactly what it needs: its scripts and styles from
this server, its one inline script by hash, and calls to this server only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class _DocsAssets(StaticFiles):
    """The bundles change only with the package: an hour in the browser's cache, then revalidated."""

    def file_response(self, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "public, max-age=3600"
        return response


def _policy(html: str, *, extra: str = "") -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'{extra}; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _page(html: HTMLResponse, *, extra_style: str = "", workers: bool = False) -> HTMLResponse:
    text = bytes(html.body).decode()
    policy = _policy(text, extra=extra_style)
    if workers:
        policy += "; worker-src blob:"
    return HTMLResponse(text, headers={"content-security-policy": policy})


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve /docs and /redoc from local files. Create the app with docs_url=None, redoc_url=None."""
    assets = f"{docs_url}/assets"
    app.mount(assets, _DocsAssets(directory=ASSETS_DIR), name="docs-assets")

    def root(request: Request) -> str:
        return request.scope.get("root_path", "")

    # Plain Starlette routes, as FastAPI's own docs pages are: not API operations (core/routing.py).
    async def swagger_ui(request: Request) -> HTMLResponse:
        prefix = root(request)
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{prefix}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{prefix}{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{prefix}{assets}/swagger-ui.css",
                swagger_favicon_url=f"{prefix}{assets}/favicon.png",
                oauth2_redirect_url=None,
                # No badge fetched from swagger.io's validator.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        prefix = root(request)
        # ReDoc writes its styles into <style> elements and parses the document in a worker.
        return _page(
            get_redoc_html(
                openapi_url=f"{prefix}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{prefix}{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{prefix}{assets}/favicon.png",
                with_google_fonts=False,
            ),
            extra_style=" 'unsafe-inline'",
            workers=True,
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
