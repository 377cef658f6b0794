"""What each socket of the load benchmark (``load.py``) receives, checked frame by frame.

A ``Session`` is one user and its socket, a ``Run`` one message sent and the run it started,
``Totals`` the counters of them all. ``LoadStreams`` checks the delivery contract on every
frame as it arrives — acks for the user's own sends, envelopes whole, seq strictly
increasing, each run's events in their grammar (``agent_started`` first, tool calls paired,
one ``agent_completed`` last), nothing of another user's runs or threads — and counts every
breach in its ``Violations``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from checks import DELIVERY_VIOLATIONS, Violations

JsonObject = dict[str, Any]

TOOL_RESULT = "84"
"""What the calculator answers to ``load.py``'s tool prompt."""
RUN_EVENT_TYPES = frozenset(
    {
        "agent_started",
        "agent_thinking",
        "message_delta",
        "tool_executing",
        "tool_completed",
        "approval_required",
        "agent_completed",
    }
)
"""The types bound by a run's order: `agent_started` first, `agent_completed` last."""
ENVELOPE_KEYS = ("type", "seq", "event_id", "thread_id", "run_id", "agent", "ts", "data")

VIOLATIONS = (
    "error_frames",
    "socket_closed",
    "bad_frame",
    "bad_envelope",
    "wrong_subprotocol",
    "wrong_user_id",
    "seq_not_increasing",
    "duplicate_event_id",
    "unexpected_ack",
    "duplicate_ack",
    "ack_wrong_thread",
    "foreign_run_event",
    "foreign_thread_event",
    "event_wrong_thread",
    "first_event_not_agent_started",
    "duplicate_agent_started",
    "duplicate_agent_completed",
    "event_after_agent_completed",
    "outcome_not_completed",
    "tool_unpaired",
    "tool_error",
    "tool_wrong_result",
    "expected_tool_call_missing",
    "run_stalled",
    *DELIVERY_VIOLATIONS,
    "http_send_failed",
    "server_exited",
)
"""Every correctness check; each key is always present in the report's `errors`."""


@dataclass
class Run:
    """One `send_message` and the run it started, as seen by the client."""

    user: int
    index: int
    kind: str
    """`tool` (calculator prompt) or `plain` (greeting)."""
    client_msg_id: str
    sent_thread_id: str | None
    via: int | None = None
    """Instance the run was posted to over HTTP (`POST /threads/{id}/runs`); None: the socket."""
    t_send: float = 0.0
    t_ack: float | None = None
    t_started: float | None = None
    t_completed: float | None = None
    run_id: str | None = None
    thread_id: str | None = None
    events: int = 0
    started: bool = False
    completed: bool = False
    failed: bool = False
    """An error frame answered the send; no run to wait for."""
    order_flagged: bool = False
    outcome: str | None = None
    open_tool_calls: set[str] = field(default_factory=set)
    tool_results: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Session:
    """One user: credentials, its socket and everything received on it."""

    index: int
    email: str
    password: str
    home: int = 0
    """Instance holding this user's socket and answering its HTTP calls."""
    user_id: str = ""
    token: str = ""
    ws: ClientConnection | None = None
    connected_last_seq: int = 0
    last_seq: int = 0
    runs_by_cmid: dict[str, Run] = field(default_factory=dict)
    runs_by_id: dict[str, Run] = field(default_factory=dict)
    pending: dict[str, list[tuple[JsonObject, float]]] = field(default_factory=dict)
    """Events of run ids not acked yet (an event may overtake its ack)."""
    threads: set[str] = field(default_factory=set)
    received: dict[int, str] = field(default_factory=dict)
    """seq -> event_id of every envelope received on the socket."""
    runless: list[tuple[int, str | None]] = field(default_factory=list)
    """(seq, thread_id) of envelopes without a run id, checked once all acks are in."""
    closing: bool = False
    dead: bool = False


@dataclass
class Totals:
    """Counters shared by all sessions."""

    events: int = 0
    events_in_window: int = 0
    completed: int = 0
    sent: int = 0
    seq_gaps: int = 0
    ack_after_agent_started: int = 0
    cross_instance: int = 0
    """Runs posted over HTTP to an instance other than the one holding the user's socket."""
    window_end: float | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)


class LoadStreams:
    """Checks every frame the sessions' sockets receive; counts into ``totals`` and
    ``violations``."""

    def __init__(self, violations: Violations, totals: Totals) -> None:
        self.violations = violations
        self.totals = totals

    def on_frame(self, session: Session, raw: str | bytes, now: float) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.violations.add("bad_frame", f"user {session.index}: not JSON: {raw[:200]!r}")
            return
        if not isinstance(frame, dict):
            self.violations.add("bad_frame", f"user {session.index}: not an object: {raw[:200]!r}")
            return
        if "seq" in frame:
            self.on_event(session, frame, now)
            return
        kind = frame.get("type")
        if kind == "ack":
            self.on_ack(session, frame, now)
        elif kind == "error":
            code = str(frame.get("code"))
            self.totals.error_codes[code] += 1
            ref = frame.get("ref")
            self.violations.add(
                "error_frames",
                f"user {session.index}: code={code} message={frame.get('message')!r} ref={ref!r}",
            )
            run = session.runs_by_cmid.get(ref) if isinstance(ref, str) else None
            if run is not None and run.t_ack is None:
                run.failed = True
                run.done.set()
        elif kind == "pong":
            pass
        else:
            self.violations.add("bad_frame", f"user {session.index}: unknown frame {raw[:200]!r}")

    def on_ack(self, session: Session, frame: JsonObject, now: float) -> None:
        cmid = frame.get("client_msg_id")
        run = session.runs_by_cmid.get(cmid) if isinstance(cmid, str) else None
        if run is None:
            self.violations.add("unexpected_ack", f"user {session.index}: {frame!r}")
            return
        if run.via is not None:
            self.violations.add(
                "unexpected_ack",
                f"user {session.index}: socket ack for {cmid}, posted over HTTP to instance "
                f"{run.via}",
            )
            return
        self.apply_ack(session, run, frame, now)

    def apply_ack(self, session: Session, run: Run, ack: JsonObject, now: float) -> None:
        """An ack from the socket (`ack` frame) or from `POST /threads/{id}/runs` (202 body)."""
        if run.t_ack is not None:
            self.violations.add("duplicate_ack", f"user {session.index}: {run.client_msg_id}")
            return
        run.t_ack = now
        run.run_id = str(ack.get("run_id"))
        run.thread_id = str(ack.get("thread_id"))
        if run.sent_thread_id is not None and run.thread_id != run.sent_thread_id:
            self.violations.add(
                "ack_wrong_thread",
                f"user {session.index}: sent on {run.sent_thread_id}, ack says {run.thread_id}",
            )
        session.threads.add(run.thread_id)
        session.runs_by_id[run.run_id] = run
        early = session.pending.pop(run.run_id, [])
        if early:
            self.totals.ack_after_agent_started += 1
        for event, t in early:
            self.on_run_event(session, run, event, t)

    def on_event(self, session: Session, event: JsonObject, now: float) -> None:
        self.totals.events += 1
        if self.totals.window_end is None:
            self.totals.events_in_window += 1
        self.totals.event_types[str(event.get("type"))] += 1
        seq = event.get("seq")
        missing = [key for key in ENVELOPE_KEYS if key not in event]
        if missing or not isinstance(seq, int) or not isinstance(event.get("data"), dict):
            self.violations.add(
                "bad_envelope", f"user {session.index}: missing {missing}: {str(event)[:200]}"
            )
        if not isinstance(seq, int):
            return
        if seq <= session.last_seq:
            self.violations.add(
                "seq_not_increasing", f"user {session.index}: seq {seq} after {session.last_seq}"
            )
        elif seq != session.last_seq + 1:
            self.totals.seq_gaps += 1
        session.last_seq = max(session.last_seq, seq)
        event_id = str(event.get("event_id"))
        if seq in session.received:
            self.violations.add("duplicate_event_id", f"user {session.index}: seq {seq} twice")
        session.received[seq] = event_id
        run_id = event.get("run_id")
        if run_id is None:
            thread_id = event.get("thread_id")
            session.runless.append((seq, thread_id if isinstance(thread_id, str) else None))
            return
        run = session.runs_by_id.get(str(run_id))
        if run is None:
            session.pending.setdefault(str(run_id), []).append((event, now))
        else:
            self.on_run_event(session, run, event, now)

    def on_run_event(self, session: Session, run: Run, event: JsonObject, now: float) -> None:
        kind = event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        where = f"user {session.index} run {run.run_id} ({run.kind})"
        if event.get("thread_id") != run.thread_id:
            self.violations.add(
                "event_wrong_thread", f"{where}: {kind} on thread {event.get('thread_id')}"
            )
        if kind not in RUN_EVENT_TYPES:
            return  # e.g. run_queued: about the run, outside its started..completed order
        if run.completed:
            name = (
                "duplicate_agent_completed"
                if kind == "agent_completed"
                else "event_after_agent_completed"
            )
            self.violations.add(name, f"{where}: {kind} seq {event.get('seq')}")
            return
        run.events += 1
        if kind == "agent_started":
            if run.started:
                self.violations.add("duplicate_agent_started", where)
            else:
                run.started = True
                run.t_started = now
        elif not run.started and not run.order_flagged:
            run.order_flagged = True
            self.violations.add("first_event_not_agent_started", f"{where}: first was {kind}")
        if kind == "tool_executing":
            call_id = str(data.get("tool_call_id"))
            if call_id in run.open_tool_calls:
                self.violations.add("tool_unpaired", f"{where}: {call_id} executing twice")
            run.open_tool_calls.add(call_id)
        elif kind == "tool_completed":
            self.on_tool_completed(run, data, where)
        elif kind == "agent_completed":
            self.on_run_completed(run, data, where, now)

    def on_tool_completed(self, run: Run, data: JsonObject, where: str) -> None:
        call_id = str(data.get("tool_call_id"))
        if call_id not in run.open_tool_calls:
            self.violations.add("tool_unpaired", f"{where}: {call_id} completed, never executing")
        run.open_tool_calls.discard(call_id)
        run.tool_results += 1
        if data.get("status") != "ok":
            self.violations.add("tool_error", f"{where}: {data.get('tool')} {data.get('error')}")
        elif run.kind == "tool" and TOOL_RESULT not in json.dumps(data.get("result")):
            self.violations.add(
                "tool_wrong_result", f"{where}: {data.get('tool')} -> {data.get('result')!r}"
            )

    def on_run_completed(self, run: Run, data: JsonObject, where: str, now: float) -> None:
        run.completed = True
        run.t_completed = now
        run.outcome = str(data.get("outcome"))
        self.totals.outcomes[run.outcome] += 1
        self.totals.completed += 1
        if run.outcome != "completed":
            self.violations.add(
                "outcome_not_completed", f"{where}: {run.outcome} error={data.get('error')}"
            )
        if run.open_tool_calls:
            self.violations.add("tool_unpaired", f"{where}: never completed {run.open_tool_calls}")
        if run.kind == "tool" and run.tool_results == 0 and run.outcome == "completed":
            self.violations.add("expected_tool_call_missing", where)
        run.done.set()

    def check_leftovers(self, session: Session) -> None:
        for run_id, events in session.pending.items():
            for event, _ in events:
                self.violations.add(
                    "foreign_run_event",
                    f"user {session.index}: {event.get('type')} of run {run_id}, never acked here",
                )
        for seq, thread_id in session.runless:
            if thread_id is not None and thread_id not in session.threads:
                self.violations.add(
                    "foreign_thread_event", f"user {session.index}: seq {seq} on {thread_id}"
                )
