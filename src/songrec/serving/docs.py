"""The API's documentation page, `/docs` (Swagger UI), which works offline.

FastAPI's own page loads Swagger UI from a CDN, so it is blank without internet. The app is
created with `docs_url=None`, and `install(app)` adds the same page (FastAPI's
get_swagger_ui_html) over files the app serves itself: Swagger UI and FastAPI's favicon as the
`fastapi-offline` package ships them, mounted at `/docs/assets`. The page asks no other host for
anything.

There is no `/redoc` (`redoc_url=None`): ReDoc always loads Redocly's logo from their CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
# swagger-ui-bundle.js, swagger-ui.css and favicon.png (and redoc.standalone.js, unused)
ASSETS = Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the assets and add /docs and its OAuth2 redirect page to `app`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.include_router(docs_router(app))


def docs_router(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"

    @router.get(DOCS_URL, response_class=HTMLResponse)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @router.get(oauth2_redirect_url, response_class=HTMLResponse)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return router


def _root_path(request: Request) -> str:
    """The prefix a proxy serves the app under ("" when none), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")
