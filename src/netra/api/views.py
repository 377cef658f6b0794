"""The bodies of the HTTP API's success answers, in one place: what ``GET /openapi.json``
documents for every route, and what the routes answer.

Each view holds exactly the keys the server sends, in the order it sends them. A view of a
stored row is built from the row's ``public()`` (``netra.db.records``), so the row stays
the one place that decides what of it is public, and the view the one that types it: a row
that grows a key the view does not know is refused (``extra="forbid"``), never sent
undocumented. Times are sent as the rows write them (``isoformat()``, ``+00:00``) and are
documented as ``date-time`` strings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netra.auth.scopes import Scope
from netra.circuit import CircuitState
from netra.db.records import Decision, RunStatus
from netra.events.envelope import EventType
from netra.settings import LimitSettings, TierSettings
from netra.tools.mcp_status import McpState
from netra.tools.tool import SideEffects

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""A moment, as ISO 8601 with its UTC offset: ``2026-11-24T10:00:00.123456+00:00``."""
Outcome = Literal["completed", "failed", "cancelled", "timed_out", "interrupted"]
"""How a run ended; set once it is final."""


class View(BaseModel):
    """A success body: exactly these keys, frozen, documented by the field docstrings."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# ---- accounts ------------------------------------------------------------------------------
class UserView(View):
    """A user, as ``POST /auth/register`` answers it."""

    id: str
    email: str
    roles: list[str]
    """``user``, ``admin``."""
    tier: str
    """One of the configured tiers (``free``, ``pro``, ``enterprise`` ship)."""
    created_at: Timestamp


class AdminUserView(UserView):
    """A user as administrators see it."""

    disabled: bool
    """A disabled user's sessions end and it cannot sign in."""
    limit_overrides: TierSettings
    """The user's own limits, over its tier's (``PUT /admin/users/{id}/limits``); null: the
    tier's applies."""


class AdminUserDetail(AdminUserView):
    """One user as administrators see it, with the limits in force for it."""

    limits: LimitSettings
    """Its own overrides over its tier's over the global ``limits``."""


class UsageToday(View):
    runs: int
    input_tokens: int
    output_tokens: int
    tokens: int
    """``input_tokens + output_tokens``."""
    cost_usd: float


class UsageMonth(View):
    cost_usd: float


class OrgUsageNow(View):
    """What the members of the caller's organisation spent together, against its budgets."""

    cost_usd_today: float
    cost_usd_month: float
    usd_per_day: float
    """0: no limit."""
    usd_per_month: float
    """0: no limit."""


class UsageNow(View):
    """The caller's usage, as the quotas count it."""

    runs_last_minute: int
    active_runs: int
    """Runs queued, running or waiting for approval."""
    today: UsageToday
    """Since midnight UTC."""
    month: UsageMonth
    """Since the 1st of the month, 00:00 UTC."""
    org: OrgUsageNow | None
    """The caller's organisation's spend and budgets; null: no organisation."""


class MembershipView(View):
    """The organisation a user belongs to."""

    id: str
    name: str
    role: Literal["member", "admin"]
    """An organisation's admins see its usage figures (``GET /org/usage``)."""


class AccountView(UserView):
    """The caller (``GET /me``): the user, its usage, and the limits in force for it."""

    org: MembershipView | None
    """The caller's organisation; null: none."""
    usage: UsageNow
    limits: LimitSettings
    """The user's own overrides over its tier over the global ``limits``."""
    limit_overrides: TierSettings
    """The user's own limits, set by an administrator; null: the tier's applies."""


class UserPage(View):
    items: list[AdminUserView]


# ---- organisations -------------------------------------------------------------------------
class OrgView(View):
    """An organisation."""

    id: str
    name: str
    usd_per_day: float
    """US dollars its members' model calls may cost together per UTC day; 0: no limit."""
    usd_per_month: float
    """The same per UTC calendar month; 0: no limit."""
    members: int
    created_at: str


class MemberView(View):
    user_id: str
    email: str
    role: Literal["member", "admin"]


class OrgDetail(OrgView):
    """An organisation with its members, by email."""

    member_list: list[MemberView]


class OrgPage(View):
    items: list[OrgView]
    """By name."""
    next_cursor: str | None
    """Pass it back as ``cursor`` for the next page; null on the last."""


class MemberPage(View):
    items: list[MemberView]
    """By email."""


class TokenPairView(View):
    """An access token and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    """Seconds the access token lives."""
    refresh_token: str
    """Spent by ``POST /auth/refresh``; presenting it twice ends the session."""
    refresh_expires_in: int
    """Seconds the refresh token lives."""


class ApiKeyView(View):
    """An API key, never its secret."""

    id: str
    name: str
    prefix: str
    """The secret's first characters (``nk_`` and 8 more), to tell keys apart."""
    scopes: list[Scope]
    """What the key may do (``threads:read``, ``threads:write``, ``runs:write``)."""
    created_at: Timestamp
    expires_at: Timestamp | None
    """When it stops working; none: never (until revoked)."""
    last_used_at: Timestamp | None
    """When it last authenticated a request or a socket, to the minute; none: never."""


class NewApiKeyView(ApiKeyView):
    """A new API key, with its secret: shown this once, never again."""

    secret: str
    """``nk_…``: send it as ``Authorization: Bearer <secret>`` or in the ``bearer``
    subprotocol of ``/ws``. Keep it secret; it cannot be shown again."""


class ApiKeyPage(View):
    items: list[ApiKeyView]
    """The keys not revoked (expired ones too), newest first; at most 100."""


# ---- threads and messages ------------------------------------------------------------------
class ThreadView(View):
    id: str
    title: str
    agent: str
    """The agent that answers the thread's messages."""
    pinned: bool
    """Shown first by the chat page (``GET /threads?pinned=true``)."""
    archived: bool
    """Left out of ``GET /threads`` unless asked for (``archived=true``)."""
    active_leaf: str | None
    """The last message of the branch shown and continued; none before the first message.
    ``GET /threads/{id}/messages`` reads the path to it; a new message follows it."""
    created_at: Timestamp
    updated_at: Timestamp


class ThreadPage(View):
    items: list[ThreadView]
    """Newest activity first."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; none after the last page."""


class SearchHitView(View):
    thread_id: str
    title: str
    """The thread's title."""
    message_id: str | None
    """The message that matched; none when the title did."""
    role: Literal["user", "assistant"] | None
    excerpt: str
    """The matching text (a long message: around its first matching word)."""
    at: Timestamp
    """When the message was written, or the thread last changed."""


class SearchPage(View):
    items: list[SearchHitView]
    """Newest first."""
    terms: list[str]
    """The words searched for, as understood (lowercased, letters and digits)."""


class MessageView(View):
    id: str
    thread_id: str
    run_id: str | None
    """An answer: the run that wrote it. A question: as stored, the run it started; in a
    page of a branch, the run whose answer follows it there, or else its newest run (one
    still working, or one that ended without an answer)."""
    role: Literal["user", "assistant"]
    content: str
    parent_id: str | None
    """The message it follows: a question the answer before it, an answer its question;
    none for the thread's first question (and versions of it)."""
    turn: int
    """The turn's number on its branch, from 1; an answer shares its question's."""
    created_at: Timestamp


class BranchMessageView(MessageView):
    """A message of the thread's branch, with its alternatives."""

    siblings: list[str]
    """The ids of the messages in its place, oldest first, itself among them: the versions
    of a question (edits), or the answers to it (regenerations). One id: no alternatives."""


class MessagePage(View):
    items: list[BranchMessageView]
    """The branch ending at the thread's ``active_leaf``, in turn order, oldest first: each
    question, then its answer."""
    older_cursor: str | None
    """Pass as ``before`` for the turns before this page; none at the thread's start."""
    newer_cursor: str | None
    """Pass as ``after`` for the turns after this page; none at the thread's end (as read)."""


class AckView(View):
    """A message was stored and its run queued."""

    client_msg_id: str | None
    message_id: str
    """The question the run answers: the message sent or edited, or the one regenerated."""
    thread_id: str
    run_id: str


class TreeNodeView(View):
    id: str
    parent_id: str | None
    role: Literal["user", "assistant"]
    turn: int
    run_id: str | None
    created_at: Timestamp


class TreePage(View):
    """A page of a thread's messages as a tree: every branch, without the texts."""

    items: list[TreeNodeView]
    """Oldest first."""
    active_leaf: str | None
    """Where the thread's branch ends."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; none after the last page."""


# ---- usage reports -------------------------------------------------------------------------
class UsageTotalsView(View):
    runs: int
    """Runs with a model call in the group."""
    calls: int
    """Model calls."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    """US dollars, at the prices of when each call was made."""


class UsageLineView(UsageTotalsView):
    key: str
    """The group: a day (``YYYY-MM-DD``, UTC), a model id, an agent, a user's email, a
    tier or an organisation's name ("" for calls made in none)."""
    split: str
    """Its part of the second grouping (``split_by``); "" without one."""


class UsageReportView(View):
    """Model calls and their spend over a span of days, by group."""

    group_by: Literal["day", "model", "agent", "user", "tier", "org"]
    split_by: Literal["day", "model", "agent", "user", "tier", "org"] | None
    """Each group split by this too (a stacked chart's parts), or none."""
    first_day: str
    """The span's first day (UTC), included."""
    last_day: str
    """Its last day, included."""
    items: list[UsageLineView]
    """In key order."""
    totals: UsageTotalsView
    """Of every group, not only this page's."""
    next_cursor: str | None
    """Pass as ``cursor`` (same span and grouping) for the next page; none after the last."""


# ---- runs and events -----------------------------------------------------------------------
class RunErrorView(View):
    """Why a run failed or was stopped."""

    code: str
    """``model_behavior``, ``step_limit``, ``token_budget``, ``cost_budget``, ``timed_out``,
    ``cancelled``, ``superseded``, ``interrupted``, ``internal_error`` …"""
    message: str


class UsageView(View):
    """What a run's model calls used."""

    input_tokens: int
    """Every input token, those read from the provider's prompt cache too."""
    output_tokens: int
    cached_input_tokens: int = 0
    """Input tokens read from the provider's prompt cache (priced at its cached price)."""
    cost_usd: float


class RunView(View):
    id: str
    thread_id: str
    parent_run_id: str | None
    """The run that delegated this one to a sub-agent."""
    agent: str
    model: str
    status: RunStatus
    outcome: Outcome | None
    """Set once the run is final."""
    error: RunErrorView | None
    usage: UsageView | None
    """Recorded when the run pauses or ends."""
    attempt: int
    """How many times the run was started (a resumed run counts again)."""
    message_id: str
    """The id its answer is (or will be) stored under; its ``message_delta`` events carry
    it."""
    question_id: str | None
    """The user message it answers; none for a sub-agent's run, which is given a task."""
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class ToolDecisionView(View):
    """The owning user's answer to a tool call waiting for approval."""

    run_id: str
    tool_call_id: str
    decision: Decision | None
    """The answer that stands: the first one given."""
    already_decided: bool
    """Whether an earlier answer stood already (this one changed nothing)."""


class EventView(View):
    """One event of the user's stream: the envelope of ``docs/protocol.md``."""

    type: EventType
    seq: int
    """Per user, strictly increasing across all of the user's threads and runs."""
    event_id: str
    thread_id: str | None
    run_id: str | None
    agent: str | None
    ts: Timestamp
    """When it was stored, in milliseconds, UTC (``Z``)."""
    data: dict[str, Any]
    """The payload of the event's type (the event table of ``docs/protocol.md``)."""


class RunPage(View):
    items: list[RunView]
    """Newest first."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; none after the last page."""


class EventPage(View):
    items: list[EventView]
    """In seq order."""


class StreamPage(EventPage):
    """A page of the caller's whole stream."""

    last_seq: int
    """The newest seq of the caller's stream now."""


# ---- what the caller may use ---------------------------------------------------------------
class AgentView(View):
    name: str
    description: str
    model: str | None
    """The model id it runs on; null uses the configured default."""


class AgentPage(View):
    items: list[AgentView]


class ToolView(View):
    name: str
    description: str
    parameters: dict[str, Any]
    """The JSON Schema of the tool's arguments."""
    side_effects: SideEffects
    requires_approval: bool
    """Each call waits for the owning user's approval."""


class ToolPage(View):
    items: list[ToolView]


# ---- the cluster and the process -----------------------------------------------------------
class InstanceView(View):
    id: str
    role: str
    """``serve`` or ``worker``."""
    host: str
    pid: int
    version: str
    started_at: Timestamp
    heartbeat_at: Timestamp
    stopped_at: Timestamp | None
    alive: bool
    """Not stopped, and beat within one lease."""
    runs_executing: int
    sockets: int


class InstancePage(View):
    instance: str
    """The id of the instance that answered."""
    items: list[InstanceView]
    """Every instance that beat within the last hour, newest first."""


class Health(View):
    status: Literal["ok"]


class DatabaseCheck(View):
    healthy: bool
    backend: str
    reason: str | None


class WriterCheck(View):
    healthy: bool


class BusCheck(View):
    """The event bus; a Redis bus adds its counters (``published``, ``dropped`` …)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, int] = Field(init=False)
    healthy: bool
    backend: str
    reason: str | None


class ClusterCheck(View):
    healthy: bool
    role: str
    executes_runs: bool
    heartbeats: int
    reason: str | None


class QueueCheck(View):
    queued: int | None
    """Runs waiting to execute in the cluster; null when the database did not answer."""
    max_queued_runs: int
    """``limits.max_queued_runs``; 0 means no limit."""
    shedding: bool
    """Whether a new message would be refused (``503 overloaded``) now."""


class McpCheck(View):
    healthy: bool
    state: McpState
    tools: int
    """How many of its tools are registered."""
    reason: str | None


class EndpointCheck(View):
    """One endpoint of a model provider."""

    url: str
    healthy: bool
    """Whether its latest health probe passed (true until one has run)."""
    circuit: CircuitState
    """``closed`` (calls flow), ``open`` (skipped without a call) or ``half_open`` (the next
    call is a trial)."""
    in_flight: int
    """Model calls streaming from it now."""
    last_error: str | None
    """Why its latest failed call or probe failed (kept once it recovers)."""


class ProviderCheck(View):
    healthy: bool
    """Whether one of its endpoints at least can take a call now."""
    endpoints: list[EndpointCheck]


class ReadinessChecks(View):
    database: DatabaseCheck
    event_writer: WriterCheck
    event_bus: BusCheck
    cluster: ClusterCheck
    run_queue: QueueCheck
    mcp_servers: dict[str, McpCheck]
    """By server name."""
    model_providers: dict[str, ProviderCheck]
    """The providers built so far (those the configured models name), by name."""


class Readiness(View):
    status: Literal["ready", "degraded", "not_ready"]
    instance: str
    checks: ReadinessChecks
