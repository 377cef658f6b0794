"""The ASGI application, ``create_app(settings)``: the HTTP routes, the ``/ws`` endpoint and
the middleware over one ``Netra`` (``netra.instance``), which its lifespan starts and stops.
Everything is built here and passed explicitly; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from netra import __version__
from netra.api import admin, api_keys, auth, docs, orgs, runs, streams, system, threads, usage
from netra.api.errors import install as install_error_handlers
from netra.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from netra.api.openai_compat import routes as openai_compat
from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.instance import Netra
from netra.realtime.endpoint import WebSocketEndpoint
from netra.settings import Settings

STATIC = Path(__file__).parent / "web" / "static"
SOCKET_PATH = "/ws"


class NetraApp(FastAPI):
    """FastAPI, with ``/ws`` handed straight to the socket endpoint (``sockets``). A socket
    lives for hours, and each layer of middleware and routing it went through would stay
    suspended under it as long (FastAPI's exit stacks among them): about 12 kB a socket.
    None of them acts on a WebSocket: the HTTP middleware passes it through, the exception
    handlers answer HTTP requests, and the endpoint handles its own errors."""

    sockets: WebSocketEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "websocket"
            and self.sockets is not None
            and scope["path"] == self.root_path + SOCKET_PATH
        ):
            await self.sockets(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


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

    # FastAPI's own /docs and /redoc load their scripts from a CDN: ours serve local copies.
    app = NetraApp(
        title="Netra", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.netra = netra
    app.add_middleware(BodyLimitMiddleware, max_bytes=netra.settings.server.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    docs.install(app)
    routers = (
        system.router,
        auth.router,
        api_keys.router,
        threads.router,
        runs.router,
        streams.router,
        admin.router,
        orgs.router,
        usage.router,
        openai_compat.router,
    )
    for router in routers:
        app.include_router(router)
    app.sockets = WebSocketEndpoint(
        config=netra.config,
        sessions=netra.sessions,
        api_keys=netra.api_keys,
        db=netra.db,
        sockets=netra.sockets,
        admissions=netra.admissions,
        runs=netra.runs,
    )
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # FastAPI builds an included router's routes (their dependencies, the schemas of their
    # bodies and answers) on the first request that reaches the router: ~120 ms for all of
    # them, paid by the first users of a fresh process, router by router — seconds on a
    # loaded machine. Built here instead, before the server says it is ready.
    for _ in iter_route_contexts(app.routes):
        pass
    return app
