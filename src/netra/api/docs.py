"""The interactive API docs — ``/docs`` (Swagger UI) and ``/redoc`` — over ``/openapi.json``,
with the scripts, styles and icon they load served from this server (``/docs/assets/…``, the
copies the ``fastapi-offline`` package ships), never from a CDN: the docs work on a network
with no way out, and a browser reading them fetches nothing from anywhere else (Swagger
UI's validator badge, which would call validator.swagger.io, is off)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
"""Where the docs' scripts, styles and icon are served."""


def _assets() -> Path:
    """The package's copies of Swagger UI and ReDoc, found without importing it."""
    spec = find_spec("fastapi_offline")
    if spec is None or spec.origin is None:  # a dependency: only a broken install lacks it
        raise RuntimeError("the fastapi-offline package is not installed")
    return Path(spec.origin).parent / "static"


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (the application is made with FastAPI's
    own ``docs_url`` and ``redoc_url`` off, which load theirs from a CDN)."""
    app.mount(ASSETS, StaticFiles(directory=_assets()), name="docs-assets")
    # Module-level endpoints that find their application in the request: FastAPI keeps the
    # endpoints it has seen in a process-wide cache, and a closure over ``app`` would keep
    # every application of the process (a test worker starts hundreds) alive with it.
    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _openapi_url(request: Request) -> str:
    return _root(request) + (request.app.openapi_url or "/openapi.json")


async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
