"""The ASGI application, ``create_app(settings)``: the HTTP routes, the ``/ws`` endpoint and
the middleware over one ``Netra`` (``netra.instance``), which its lifespan starts and stops.
Everything is built here and passed explicitly; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from netra import __version__
from netra.api import admin, auth, runs, system, threads
from netra.api.errors import install as install_error_handlers
from netra.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.instance import Netra
from netra.realtime.endpoint import WebSocketEndpoint
from netra.settings import Settings

STATIC = Path(__file__).parent / "web" / "static"


def create_app(
    settings: Settings | None = None,
    *,
    config: UnifiedConfigurationManager | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the ASGI application. Pass ``config`` (or plain ``settings``) explicitly;
    ``migrate=False`` when the database was just migrated (``netra serve`` does it first)."""
    if config is None:
        config = UnifiedConfigurationManager(
            IsolatedEnvironment.isolated(),
            overrides=(settings or Settings()).model_dump(exclude_unset=True),
        )
    netra = Netra(config, migrate=migrate)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await netra.start()
        try:
            yield
        finally:
            await netra.stop()

    app = FastAPI(title="Netra", version=__version__, lifespan=lifespan)
    app.state.netra = netra
    app.add_middleware(BodyLimitMiddleware, max_bytes=netra.settings.server.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for router in (system.router, auth.router, threads.router, runs.router, admin.router):
        app.include_router(router)
    endpoint = WebSocketEndpoint(
        config=netra.config,
        sessions=netra.sessions,
        db=netra.db,
        sockets=netra.sockets,
        runs=netra.runs,
    )
    app.add_api_websocket_route("/ws", endpoint.serve)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
