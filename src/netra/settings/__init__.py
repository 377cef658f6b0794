"""The typed settings model: one tree of sections, every field documented.

Values come from ``UnifiedConfigurationManager`` (``netra.config``), which layers defaults,
a TOML file, a ``.env`` file, ``NETRA_…`` environment variables (nested with ``__``, e.g.
``NETRA_DATABASE__URL``) and runtime overrides. The README's configuration table is checked
against these fields by the test suite. The sections of the models (``models.py``) and of
the agents and their tools (``agents.py``) have modules of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from netra.env import normalize_environment
from netra.errors import UnknownModel, did_you_mean
from netra.model_ids import ModelId
from netra.settings.agents import AGENT_NAME, AgentSettings, ToolSettings
from netra.settings.models import ModelSettings
from netra.settings.section import Section


class ServerSettings(Section):
    host: str = "127.0.0.1"
    """Interface `netra serve` binds to."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port `netra serve` listens on."""
    data_dir: Path = Path("netra-data")
    """Directory for the SQLite database and the generated development secret."""
    shutdown_grace_s: float = Field(10.0, ge=0)
    """Seconds running work gets to finish when the server stops."""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """Largest HTTP request body; bigger is refused with 413."""
    keep_alive_s: int = Field(75, ge=1)
    """Seconds an idle HTTP connection stays open for the client's next request. Longer
    than the idle expiry of client pools and proxies (httpx 5 s, nginx upstreams 60 s), so
    a client never sends on a connection the server is closing at that moment."""
    app: str | None = None
    """`pkg.module:function` called with the `Netra` object before serving (`netra serve` and
    `netra worker`; `--app`), to register tools and agents; empty: none."""


class DatabaseSettings(Section):
    url: str | None = None
    """SQLAlchemy async URL; empty means `sqlite+aiosqlite:///<data_dir>/netra.db`."""
    pool_size: int = Field(10, ge=1)
    """PostgreSQL connections of the instance's pool (asyncpg, opened as needed); also of
    the engine that runs migrations."""
    max_overflow: int = Field(20, ge=0)
    """PostgreSQL connections the migrations' engine may open beyond `pool_size`."""
    pool_timeout_s: float = Field(30.0, gt=0)
    """Seconds to wait for a pooled connection before failing."""
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)
    """How long SQLite waits for a lock before failing a write."""
    idle_in_transaction_timeout_s: float = Field(10.0, ge=0)
    """PostgreSQL ends a session idle this long inside a transaction, releasing its row
    locks: a frozen or stuck instance cannot block the others' takeovers. 0 means never."""
    echo: bool = False
    """Log every SQL statement (development only)."""


class AuthSettings(Section):
    jwt_secret: SecretStr | None = None
    """HMAC secret for tokens (32+ bytes); empty in development generates one in data_dir."""
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    """The one algorithm tokens are signed and verified with."""
    issuer: str = "netra"
    """`iss` claim written and required."""
    audience: str = "netra"
    """`aud` claim written and required."""
    access_token_ttl_s: int = Field(900, ge=5)
    """Lifetime of an access token in seconds (short: refresh tokens renew it)."""
    refresh_token_ttl_s: int = Field(30 * 86400, ge=60)
    """Lifetime of a refresh token; each use rotates it."""
    login_failures_per_account: int = Field(5, ge=1)
    """Failed logins allowed per account and client address in the throttle window."""
    login_failures_per_address: int = Field(20, ge=1)
    """Failed logins allowed per client address, across accounts, in the throttle window."""
    login_throttle_window_s: int = Field(900, ge=1)
    """Window over which failed logins are counted."""
    allow_registration: bool = True
    """Whether `POST /auth/register` is open."""
    password_time_cost: int = Field(3, ge=1, le=20)
    """argon2id passes over memory per password hash (staging and production need 2+)."""
    password_memory_kib: int = Field(65_536, ge=64, le=4_194_304)
    """argon2id memory per password hash in KiB (staging and production need 19,456+)."""
    session_cache_s: float = Field(10.0, ge=0, le=300)
    """How long a session this instance read stays trusted for new sockets without reading
    it again; 0 reads it for every socket. A revocation on this instance applies at once; on
    another instance once its notice arrives over Redis, at the latest after this long."""


class LimitSettings(Section):
    max_concurrent_runs_per_user: int = Field(4, ge=1)
    """Runs of one user executing at once; more wait in the queue."""
    run_timeout_s: float = Field(300.0, gt=0)
    """Wall-clock budget of one run; past it the run ends `timed_out`."""
    max_steps: int = Field(16, ge=1)
    """Steps (model calls) one run may take before it fails."""
    run_token_budget: int = Field(0, ge=0)
    """Model tokens (in + out) one run may use before it fails; 0 means no limit."""
    max_message_chars: int = Field(32_000, ge=1)
    """Longest user message accepted."""
    runs_per_minute: int = Field(0, ge=0)
    """Runs one user may start in any 60 seconds; 0 means no limit."""
    tokens_per_day: int = Field(0, ge=0)
    """Model tokens (in + out) one user may use per UTC day; 0 means no limit."""
    usd_per_day: float = Field(0.0, ge=0)
    """US dollars of model calls one user may spend per UTC day; 0 means no limit."""
    usd_per_month: float = Field(0.0, ge=0)
    """US dollars of model calls one user may spend per UTC calendar month; 0: no limit."""
    run_usd_budget: float = Field(0.0, ge=0)
    """US dollars of model calls one run may spend before it fails (`cost_budget`); 0: no
    limit."""
    concurrency_policy: Literal["queue", "reject"] = "queue"
    """Past `max_concurrent_runs_per_user`, new runs wait (`queue`) or are refused (`reject`)."""
    allowed_agents: list[str] | None = None
    """Agents the user may start; empty means all."""
    allowed_tools: list[str] | None = None
    """Tools the user's runs may call; empty means all the user's role allows."""
    quota_warning_ratio: float = Field(0.8, gt=0, le=1)
    """A `quota_warning` event is sent once usage passes this share of a quota."""
    max_executing_runs: int = Field(256, ge=0)
    """Runs one instance executes at once, all users together; more wait `queued` (and count
    toward `max_queued_runs`). 0 means no limit. Server-wide, read at start."""
    max_queued_runs: int = Field(1_000, ge=0)
    """Runs waiting to execute, across all users of the cluster, past which a new message is
    refused with 503 `overloaded`; 0 means no limit. Server-wide: not set per tier or user."""
    overload_retry_after_s: int = Field(10, ge=1)
    """Seconds a client refused with `overloaded` is told to wait (`Retry-After`)."""


class TierSettings(Section):
    """Limits of one tier; an empty value falls back to the global ``limits`` section."""

    max_concurrent_runs_per_user: int | None = Field(None, ge=1)
    """Runs executing at once for a user of this tier."""
    run_timeout_s: float | None = Field(None, gt=0)
    """Wall-clock budget of one run."""
    max_steps: int | None = Field(None, ge=1)
    """Model calls one run may make."""
    run_token_budget: int | None = Field(None, ge=0)
    """Model tokens one run may use; 0 means no limit."""
    max_message_chars: int | None = Field(None, ge=1)
    """Longest user message accepted."""
    runs_per_minute: int | None = Field(None, ge=0)
    """Runs started in any 60 seconds; 0 means no limit."""
    tokens_per_day: int | None = Field(None, ge=0)
    """Model tokens per UTC day; 0 means no limit."""
    usd_per_day: float | None = Field(None, ge=0)
    """US dollars of model calls per UTC day; 0 means no limit."""
    usd_per_month: float | None = Field(None, ge=0)
    """US dollars of model calls per UTC calendar month; 0 means no limit."""
    run_usd_budget: float | None = Field(None, ge=0)
    """US dollars of model calls one run may spend; 0 means no limit."""
    concurrency_policy: Literal["queue", "reject"] | None = None
    """What happens past the concurrency limit."""
    allowed_agents: list[str] | None = None
    """Agents this tier may start."""
    allowed_tools: list[str] | None = None
    """Tools this tier's runs may call."""


def _default_tiers() -> dict[str, TierSettings]:
    return {
        "free": TierSettings(
            max_concurrent_runs_per_user=2,
            runs_per_minute=30,
            tokens_per_day=500_000,
            max_message_chars=8_000,
        ),
        "pro": TierSettings(
            max_concurrent_runs_per_user=8, runs_per_minute=120, tokens_per_day=10_000_000
        ),
        "enterprise": TierSettings(max_concurrent_runs_per_user=32, runs_per_minute=600),
    }


class WebSocketSettings(Section):
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins allowed to open `/ws` besides the server's own; `*` allows any."""
    max_frame_bytes: int = Field(65_536, ge=1024)
    """Largest client frame; bigger closes the socket with 1009."""
    send_queue_max: int = Field(2_000, ge=10)
    """Frames buffered for one socket before a non-reading client is disconnected (1013)."""
    ping_interval_s: float = Field(20.0, gt=0)
    """Protocol-level ping interval; a socket that misses a pong is closed."""
    ping_timeout_s: float = Field(20.0, gt=0)
    """Seconds to wait for a pong."""
    max_connections_per_user: int = Field(16, ge=1)
    """Sockets one user may hold at once."""
    frames_per_s: float = Field(10.0, gt=0)
    """Sustained client frames per second one socket may send; more get `rate_limited`."""
    frame_burst: int = Field(30, ge=1)
    """Client frames one socket may send at once before the rate applies."""
    max_json_depth: int = Field(16, ge=2)
    """Deepest nesting of objects and arrays accepted in a client frame."""
    position_check_s: float = Field(5.0, gt=0)
    """Seconds between checks that every socket has sent what its user's log holds; one
    still behind a check later catches up from the log (events stored but never published)."""


class EventSettings(Section):
    batch_max: int = Field(256, ge=1)
    """Most events written in one database transaction."""
    max_string_chars: int = Field(8_000, ge=100)
    """Longer strings in event payloads are truncated with a marker."""
    max_list_items: int = Field(200, ge=1)
    """Longer lists in event payloads are truncated with a marker."""
    replay_page: int = Field(500, ge=1)
    """Events read per page when a socket resumes."""


class RedisSettings(Section):
    url: str | None = None
    """Redis URL of the scale-out event bus (`redis://host:6379/0`); empty: in-process bus."""
    channel_prefix: str = Field("netra", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Channel names are `<prefix>:user:<user_id>`; deployments sharing a Redis differ here."""
    timeout_s: float = Field(2.0, gt=0)
    """Time limit of every Redis call: connect, publish, subscribe, ping."""
    health_check_interval_s: int = Field(5, ge=1)
    """Seconds between pings of idle connections; a pub/sub link missing a pong is replaced."""
    reconnect_max_s: float = Field(5.0, gt=0)
    """Longest pause between reconnect or republish attempts (doubling from 50 ms up to it)."""
    outbox_max: int = Field(10_000, ge=1)
    """Events waiting to be published; past it, new ones are dropped (sockets on other
    instances then catch up from the event log)."""

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None


class ClusterSettings(Section):
    """How instances share the runs table: leases, heartbeats and takeover."""

    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,60}$")
    """This instance's name in the runs table and `GET /admin/instances`; empty: a new one
    at every start. A fixed id lets a restarted instance take its own runs back at once."""
    lease_s: float = Field(15.0, gt=0)
    """How long a run stays with its executor without a heartbeat; after that another
    instance takes it over and resumes it from its checkpoint (turns and tool-call ledger)."""
    heartbeat_s: float = Field(3.0, gt=0)
    """Seconds between heartbeats: leases renewed, cancels from other instances applied,
    expired runs taken over, queued runs without an executor adopted."""
    execute_runs: bool = True
    """Whether `netra serve` executes runs; false leaves them to `netra worker` processes."""
    max_recoveries: int = Field(3, ge=0)
    """Takeovers of one run after its executor died; one more and it ends `interrupted`."""

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> ClusterSettings:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError("heartbeat_s must be shorter than lease_s")
        return self


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the `netra` loggers."""
    json_format: bool = False
    """One JSON object per log line instead of text."""


class FaultSettings(Section):
    """Test-only crash points: the process kills itself (SIGKILL) at an exact point of the
    write path, so a crash there is reproducible. Refused in staging and production."""

    crash_at: Literal["", "final_write", "final_publish", "tool_completed"] = ""
    """`final_write`: a run's final state and `agent_completed` are written but not yet
    committed; `final_publish`: committed, not yet published; `tool_completed`: a tool
    call's outcome and `tool_completed` are committed, not yet published (the run's next
    step never starts). Empty: never."""
    crash_armed_by: str = ""
    """A file naming the run (its id) that fires the crash point, once: the file
    is removed when it fires. Empty: the point fires for every run."""


class Settings(Section):
    environment: Literal["development", "test", "staging", "production"] = "development"
    """Profile: production refuses unsafe values."""

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: object) -> object:
        return normalize_environment(value) if isinstance(value, str) else value

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    auth: AuthSettings = AuthSettings()
    models: ModelSettings = ModelSettings()
    tools: ToolSettings = ToolSettings()
    limits: LimitSettings = LimitSettings()
    tiers: dict[str, TierSettings] = Field(default_factory=_default_tiers)
    """Per-tier limits (`[tiers.<name>]` in TOML); unset values use `limits`."""
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    """Agents defined here (`[agents.<name>]`), beside the built-in ones and those `--app`
    registers; checked against the tools when loaded, reloaded for new runs."""
    websocket: WebSocketSettings = WebSocketSettings()
    events: EventSettings = EventSettings()
    redis: RedisSettings = RedisSettings()
    cluster: ClusterSettings = ClusterSettings()
    logging: LoggingSettings = LoggingSettings()
    faults: FaultSettings = FaultSettings()

    @field_validator("agents")
    @classmethod
    def _agents(
        cls, value: dict[str, AgentSettings], info: ValidationInfo
    ) -> dict[str, AgentSettings]:
        """Names, model ids and tiers; the tools are checked against the tool registry when
        the agents are loaded (``netra.agents.configured``)."""
        bad = [name for name in value if not AGENT_NAME.match(name)]
        if bad:
            raise ValueError(f"agent names must match {AGENT_NAME.pattern}: {bad}")
        models, tiers = info.data.get("models"), info.data.get("tiers")
        for name, agent in value.items():
            if models is not None:
                for model_id in [*([agent.model] if agent.model else []), *(agent.fallbacks or ())]:
                    try:
                        ModelId.parse(model_id).check_provider(models.providers)
                    except UnknownModel as exc:
                        raise ValueError(f"agents.{name}: {exc.message}") from None
            unknown = [t for t in agent.tiers or () if tiers is not None and t not in tiers]
            if unknown:
                hint = did_you_mean(unknown[0], tiers or ())
                raise ValueError(f"agents.{name}.tiers: unknown tier {unknown[0]!r}{hint}")
        return value

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.server.data_dir / 'netra.db').as_posix()}"
