"""Netra, the application object: every process-wide object of one instance — a serving
instance (``netra serve``) or a worker (``netra worker``) — built from the configuration and
wired together, then started and stopped as one. Nothing is created at import time.

The HTTP routes read it as the application's state; the ASGI application over it is
``netra.app``, which a worker does without."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING

from netra.agents.base import AgentDefinition
from netra.agents.configured import follow_config
from netra.agents.optimizer import AnalystAgent, OptimizerAgent, ReporterAgent
from netra.agents.registry import AgentRegistry
from netra.auth.accounts import AccountService
from netra.auth.api_keys import ApiKeyService
from netra.auth.orgs import OrgService
from netra.auth.passwords import PasswordHasher
from netra.auth.sessions import SessionService
from netra.auth.throttle import LoginThrottle
from netra.auth.tokens import TokenService
from netra.config import UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.engine.execution import ExecutionEngine
from netra.engine.supervisor import RunSupervisor
from netra.errors import ConfigurationError
from netra.events.bridge import AgentWebSocketBridge
from netra.events.bus import EventBus, InProcessBus
from netra.events.writer import EventLogWriter
from netra.extension import run_setup
from netra.faults import CrashPoints
from netra.ids import new_id
from netra.metrics import EndpointLevel, Levels, Metrics
from netra.models.catalog import ModelCatalog, ModelRegistry
from netra.models.offline import OfflineModel
from netra.models.provider import Provider
from netra.models.scripted import ScriptedModel
from netra.realtime.admission import AdmissionReads
from netra.realtime.manager import UnifiedWebSocketManager
from netra.realtime.revocations import RevocationRelay
from netra.runs.quotas import SubAgentAdmission
from netra.runs.service import DEFAULT_AGENT, RunService
from netra.runs.shedding import LoadShedder
from netra.server import set_log_level
from netra.services import ServiceRegistry
from netra.settings import RedisSettings, Settings
from netra.tools.calculator import calculator
from netra.tools.clock import clock
from netra.tools.delegate import delegate_tool
from netra.tools.dispatcher import ToolRegistry
from netra.tools.spend import SpendTools

if TYPE_CHECKING:
    from netra.tools.mcp import McpToolSource

log = logging.getLogger(__name__)
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


def event_bus(settings: RedisSettings) -> EventBus:
    """Redis pub/sub when ``redis.url`` is set, else the in-process bus; the Redis client is
    imported only in the first case."""
    if not settings.url:
        return InProcessBus()
    from netra.events.redis_bus import RedisBus

    return RedisBus(settings)


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
        self.bus = event_bus(settings.redis)
        self.metrics = Metrics(self._levels)
        self.writer = EventLogWriter(
            self.db, self.bus, settings.events, self.metrics, CrashPoints(settings.faults)
        )
        self.bridge = AgentWebSocketBridge(self.writer, settings.events)
        self.tokens = TokenService(settings.auth, jwt_secret(settings))
        self.sessions = SessionService(self.db, self.tokens, settings.auth)
        self.orgs = OrgService(self.db, self.sessions)
        self.api_keys = ApiKeyService(self.db, self.sessions)
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
        self.mcp_servers: list[McpToolSource] = []
        if settings.tools.mcp_servers:
            # The SDK loads only when a server is configured (a restart applies the list).
            from netra.tools.mcp import McpToolSource

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
                    "Answers how to cut your AI costs (your organisation's, for its admins): "
                    "a team reads the usage, finds cheaper models that fit it and what "
                    "trimming prompts would save, and ranks it all with the savings."
                ),
                tools=("delegate",),
            ),
            OptimizerAgent,
            tags=("builtin",),
        )
        team = (
            ("spend-data", "The optimizer's data analyst: reads the usage report.", AnalystAgent),
            (
                "spend-savings",
                "The optimizer's savings analyst: cheaper models that fit, trimming.",
                AnalystAgent,
            ),
            ("spend-report", "The optimizer's reporter: writes up the figures.", ReporterAgent),
        )
        tools = {"spend-data": ("usage_report",), "spend-savings": ("recommend_models",)}
        for name, description, factory in team:
            self.agents.register(
                AgentDefinition(
                    name=name,
                    description=description,
                    tools=tools.get(name, ()),
                    delegated_only=True,
                ),
                factory,
                tags=("builtin", "optimizer-team"),
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
        self.admissions = AdmissionReads(self.db, self.sessions, self.sockets)
        """The way in of every connection, socket or SSE stream."""
        # Revoked sessions close their connections here and, over the bus, on every instance.
        self.revocations = RevocationRelay(self.sessions, self.sockets, self.bus)
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
        # The operator's code, then the config file's agents, which may name its tools.
        if settings.server.app:
            run_setup(settings.server.app, self)
        follow_config(self.agents, config, self.tools)

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
            model_endpoints=[
                EndpointLevel(
                    provider=provider,
                    endpoint=url,
                    circuit=state.circuit.value,
                    healthy=state.healthy,
                    in_flight=state.in_flight,
                    calls=state.choices,
                    failures=state.failures,
                )
                for provider, endpoints in self.catalog.endpoints().items()
                for url, state in endpoints.items()
            ],
        )

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
        self.catalog.start()
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
        handed_back = await self.supervisor.hand_back(drained=await self.engine.shutdown())
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
