"""Runs, their events and what they used: a run, its events, the usage reports."""

from __future__ import annotations

from typing import Any, Literal

from netra.api.views import Outcome, Timestamp, View
from netra.db.records import Decision, RunStatus
from netra.events.envelope import EventType


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
