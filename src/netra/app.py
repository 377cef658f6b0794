"""The application object and ``create_app(settings)``: everything is built here and passed
explicitly; nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from netra import __version__
from netra.agents.base import AgentDefinition
from netra.agents.optimizer import OptimizerAgent
from netra.agents.registry import AgentRegistry
from netra.api import admin, auth, runs, system, threads
from netra.api.errors import install as install_error_handlers
from netra.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from netra.auth.accounts import AccountService
from netra.auth.passwords import PasswordHasher
from netra.auth.sessions import Revocation, SessionService
from netra.auth.throttle import LoginThrottle
from netra.auth.tokens import TokenService
from netra.config import UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.engine.execution import ExecutionEngine
from netra.engine.supervisor import RunSupervisor
from netra.env import IsolatedEnvironment
from netra.errors import ConfigurationError
from netra.events.bridge import AgentWebSocketBridge
from netra.events.bus import EventBus, InProcessBus
from netra.events.redis_bus import RedisBus
from netra.events.writer import EventLogWriter
from netra.faults import CrashPoints
from netra.ids import new_id
from netra.metrics import Levels, Metrics
from netra.models.catalog import ModelCatalog, ModelRegistry
from netra.models.offline import OfflineModel
from netra.models.provider import Provider
from netra.models.scripted import ScriptedModel
from netra.realtime.endpoint import CLOSE_POLICY, websocket_endpoint
from netra.realtime.manager import UnifiedWebSocketManager
from netra.runs.quotas import SubAgentAdmission
from netra.runs.service import DEFAULT_AGENT, RunService
from netra.runs.shedding import LoadShedder
from netra.server import set_log_level
from netra.services import ServiceRegistry
from netra.settings import Settings
from netra.tools.calculator import calculator
from netra.tools.clock import clock
from netra.tools.delegate import delegate_tool
from netra.tools.dispatcher import ToolRegistry
from netra.tools.mcp import McpToolSource
from netra.tools.spend import SpendTools

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "web" / "static"
CLOSE_RESTARTING = 1012


def jwt_secret(settings: Settings) -> str:
    """The configured secret; in development and test, one generated once into data_dir."""
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.get_secret_value()
    if settings.environment not in ("development", "test"):
        raise ConfigurationError("auth.jwt_secret must be set outside development")
    path = settings.server.data_dir / "jwt-secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret, encoding="utf-8")
    return secret


class Netra:
    """Every process-wide object of one server (``role`` serve) or worker, wired together."""

    def __init__(
        self, config: UnifiedConfigurationManager, *, role: str = "serve", migrate: bool = True
    ) -> None:
        self.config = config
        self.role = role
        self._migrate = migrate
        """Apply migrations at start (false when the caller just did)."""
        settings = config.settings
        self.instance_id = settings.cluster.instance_id or new_id("inst")
        self.db = DatabaseManager(settings.database_url, settings.database)
        self.bus: EventBus = RedisBus(settings.redis) if settings.redis.url else InProcessBus()
        self.metrics = Metrics(self._levels)
        self.writer = EventLogWriter(
            self.db, self.bus, settings.events, self.metrics, CrashPoints(settings.faults)
        )
        self.bridge = AgentWebSocketBridge(self.writer, settings.events)
        self.tokens = TokenService(settings.auth, jwt_secret(settings))
        self.sessions = SessionService(self.db, self.tokens, settings.auth)
        self.accounts = AccountService(
            self.db,
            PasswordHasher(
                time_cost=settings.auth.password_time_cost,
                memory_kib=settings.auth.password_memory_kib,
            ),
            self.sessions,
            LoginThrottle(
                per_account=settings.auth.login_failures_per_account,
                per_address=settings.auth.login_failures_per_address,
                window_s=settings.auth.login_throttle_window_s,
            ),
        )
        self.models: ModelRegistry = ModelRegistry("model")
        self.models.register(
            "offline", OfflineModel(chunk_delay_s=settings.models.offline_chunk_delay_ms / 1000)
        )
        self.models.register("scripted", ScriptedModel())
        self.providers: ServiceRegistry[Provider] = ServiceRegistry(
            failure_threshold=settings.models.circuit_failure_threshold,
            reset_timeout_s=settings.models.circuit_reset_s,
        )
        self.catalog = ModelCatalog(config, builtins=self.models, services=self.providers)
        self.tools: ToolRegistry = ToolRegistry("tool")
        for builtin in (calculator, clock, *SpendTools(self.db, self.catalog).tools()):
            self.tools.register(builtin.name, builtin, tags=("builtin",))
        self.mcp_servers = [
            McpToolSource(name, server, tools=self.tools, env=config.env)
            for name, server in settings.tools.mcp_servers.items()
        ]
        self.agents = AgentRegistry()
        self.agents.register(
            AgentDefinition(
                name=DEFAULT_AGENT,
                description="A general assistant that can use the calculator and the clock.",
                system_prompt=(
                    "You are Netra's assistant. Use the calculator for arithmetic and the clock "
                    "for dates and times. Answer briefly."
                ),
            ),
            tags=("builtin",),
        )
        self.agents.register(
            AgentDefinition(
                name="optimizer",
                description=(
                    "Answers how to cut your AI costs: reads your model usage and ranks "
                    "cheaper models for it, with the savings."
                ),
                tools=("usage_report", "recommend_models", "search_threads"),
            ),
            OptimizerAgent,
            tags=("builtin",),
        )
        self.engine = ExecutionEngine(
            db=self.db,
            bridge=self.bridge,
            agents=self.agents,
            tools=self.tools,
            models=self.catalog,
            config=self.config,
            metrics=self.metrics,
            bus=self.bus,
            instance_id=self.instance_id,
            admit_child=SubAgentAdmission(config),
            executes=role == "worker" or settings.cluster.execute_runs,
        )
        self.tools.register("delegate", delegate_tool(self.engine.children.run), tags=("builtin",))
        self.shedder = LoadShedder(db=self.db, config=self.config, metrics=self.metrics)
        self.runs = RunService(
            db=self.db,
            bridge=self.bridge,
            engine=self.engine,
            agents=self.agents,
            config=self.config,
            bus=self.bus,
            shedder=self.shedder,
        )
        self._watcher: asyncio.Task[None] | None = None
        self.sockets = UnifiedWebSocketManager(
            self.bus,
            self.db,
            max_connections_per_user=settings.websocket.max_connections_per_user,
            position_check_s=settings.websocket.position_check_s,
        )
        self.sessions.on_revoke(self._close_revoked_sockets)
        self.supervisor = RunSupervisor(
            role=role,
            db=self.db,
            engine=self.engine,
            bus=self.bus,
            config=self.config,
            metrics=self.metrics,
            context_for=self.accounts.context_for,
            sockets=lambda: self.sockets.counts()[0],
        )

    def _levels(self) -> Levels:
        sockets, users = self.sockets.counts()
        return Levels(
            sockets=sockets,
            socket_users=users,
            runs_executing=self.engine.stats()["runs"],
            events_written=self.writer.events_written,
            event_batches=self.writer.batches,
            sockets_caught_up=self.sockets.caught_up,
            bus=self.bus.health().counters,
        )

    def _close_revoked_sockets(self, revocation: Revocation) -> None:
        reason = f"session ended: {revocation.reason}"
        if revocation.session_id is None:
            self.sockets.close_user(revocation.user_id, CLOSE_POLICY, reason)
        else:
            self.sockets.close_session(revocation.session_id, CLOSE_POLICY, reason)

    @property
    def settings(self) -> Settings:
        return self.config.settings

    async def start(self) -> None:
        set_log_level(self.settings.logging.level)
        self.config.on_change(_apply_log_level)
        if self.config.config_file is not None:
            self._watcher = asyncio.create_task(self.config.watch(), name="config-watch")
        if self._migrate:
            await self.db.upgrade()
        await self.bus.start()
        await self.writer.start()
        # Before taking runs, so resumed runs find their MCP tools; a server that is down
        # only delays the start by its connection timeout.
        await asyncio.gather(*(source.start() for source in self.mcp_servers))
        await self.supervisor.start()
        await self.sockets.start()
        log.info("instance %s (%s) started", self.instance_id, self.role)

    async def stop(self) -> None:
        """Graceful: sockets closed with 1012 (clients reconnect elsewhere and resume), no
        more runs taken, the runs held here handed back to the cluster."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.sockets.stop()
        await self.sockets.close_all(CLOSE_RESTARTING, "server restarting")
        await self.supervisor.stop()
        handed_back = await self.engine.shutdown()
        await asyncio.gather(*(source.stop() for source in self.mcp_servers))
        await self.writer.stop(self.settings.server.shutdown_grace_s)
        await self.catalog.aclose()
        await self.bus.stop()
        await self.db.close()
        runs = "run" if handed_back == 1 else "runs"
        log.info(
            "instance %s (%s) stopped: %d %s handed back to the cluster",
            self.instance_id,
            self.role,
            handed_back,
            runs,
        )


def _apply_log_level(old: Settings, new: Settings, _paths: list[str]) -> None:
    if old.logging.level != new.logging.level:
        set_log_level(new.logging.level)


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
    app.add_api_websocket_route("/ws", websocket_endpoint)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
