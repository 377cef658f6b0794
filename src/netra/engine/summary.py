"""Summarizer: what a run is sent of a thread too long for its model's window.

A run's conversation is its branch up to its question. The newest turns are sent as they
are; what came before them is sent as the thread's summary, one system message after the
system prompt. Summaries are stored (``tables.summaries``), each through a message of the
branch, and grow: when the turns after the newest summary no longer fit, the older of them
are folded into it by a call of the run's model — metered to the run like its other calls —
and the turns kept then fill at most half the room, so the next runs of the thread reuse
that summary rather than call the model again each time.

The summary takes at most an eighth of the prompt budget (``SUMMARY_SHARE``), and at most
``SUMMARY_MAX_TOKENS``. With ``models.summarize`` off, or when the summarising call fails,
what does not fit is left out instead (``ContextReport.dropped``), as ``ContextBudget`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.messages import Said
from netra.db.records import SummaryRecord
from netra.db.summaries import SummaryRepository
from netra.events.bridge import RunEmitter
from netra.models.base import ChatMessage, Model, TextDelta, Usage, estimate_tokens
from netra.models.context import ContextBudget, message_tokens, split_turns
from netra.models.summary import SUMMARY_PROMPT, summary_request

log = logging.getLogger(__name__)

SUMMARY_SHARE = 8
"""A summary takes at most this fraction (1/n) of a prompt's budget …"""
SUMMARY_MAX_TOKENS = 1_000
"""… and at most this many tokens."""
KEEP_SHARE = 2
"""After folding turns into the summary, those kept fill at most 1/n of the room."""


@dataclass(frozen=True, slots=True)
class Recap:
    """What a run starts from of its thread's earlier turns."""

    earlier: list[ChatMessage]
    """The turns sent as they are, oldest first."""
    summary: str | None = None
    """What came before them, summarised."""
    summarized: int = 0
    """Turns the summary holds."""
    unread: int = 0
    """Turns before ``earlier`` neither read nor summarised."""
    usage: Usage = field(default_factory=Usage)
    """What summarising cost this run."""


class Summarizer:
    """Process-wide; finds, makes and stores the summaries of the threads' runs."""

    def __init__(self, db: DatabaseManager) -> None:
        self._db = db

    async def recap(
        self,
        ctx: UserExecutionContext,
        *,
        run_id: str,
        thread_id: str,
        said: Sequence[Said],
        unread: int,
        room: int,
        context: ContextBudget,
        model: Model,
        emitter: RunEmitter,
        enabled: bool,
    ) -> Recap:
        """The earlier turns ``said`` (with ``unread`` more before them) as the run's model
        can be sent them beside what is always sent (``room`` tokens left)."""
        turns = split_turns(said)
        costs = [sum(message_tokens(_chat(m)) for m in turn) for turn in turns]
        everything = Recap(_messages(turns), unread=unread)
        if not enabled or (unread == 0 and sum(costs) <= room):
            return everything
        repository = SummaryRepository(ctx)
        stored = await self._db.query(repository.newest(thread_id, [m.id for m in said]))
        start = 0
        if stored is not None:
            start = (
                next(i for i, turn in enumerate(turns) if stored.through_id in {m.id for m in turn})
                + 1
            )
        reserve = min(context.budget // SUMMARY_SHARE, SUMMARY_MAX_TOKENS)
        left = room - reserve
        spent = (
            Usage.of(stored.usage) if stored is not None and stored.run_id == run_id else Usage()
        )
        if sum(costs[start:]) <= left:  # the stored summary and the turns after it fit
            return _recap(turns[start:], stored, spent, unread)
        keep = _newest_within(costs[start:], left // KEEP_SHARE)
        fold = turns[start : len(turns) - keep]
        await emitter.thinking("Summarising earlier turns…")
        try:
            text, usage = await self._fold(
                model, stored.text if stored else None, fold, context=context, reserve=reserve
            )
        except Exception:  # the run goes on without: what does not fit is left out
            log.warning("run %s: summarising earlier turns failed", run_id, exc_info=True)
            return everything
        through = fold[-1][-1]
        summary = SummaryRecord(thread_id, through.id, through.turn, text, run_id, usage.as_dict())
        await self._db.transact(repository.add(summary, model=model.id))
        return _recap(turns[len(turns) - keep :], summary, spent + usage, unread)

    async def _fold(
        self,
        model: Model,
        text: str | None,
        turns: Sequence[Sequence[Said]],
        *,
        context: ContextBudget,
        reserve: int,
    ) -> tuple[str, Usage]:
        """``text`` (the summary so far) with ``turns`` folded in, a window's worth of turns
        a call; the calls' usage."""
        words = reserve * 3 // 4
        fixed = estimate_tokens(SUMMARY_PROMPT) + reserve + 4 * 16
        room = max(context.budget - fixed, 64)
        usage = Usage()
        for chunk in _chunks(turns, room):
            request = summary_request(text, chunk, words=words)
            parts: list[str] = []
            async for part in model.stream(request):
                if isinstance(part, TextDelta):
                    parts.append(part.text)
                elif isinstance(part, Usage):
                    usage = usage + part
            text = "".join(parts).strip() or text
        if not text:
            raise ValueError("the model wrote no summary")
        return text[: reserve * 4], usage  # a summary longer than asked for is cut


def _chat(said: Said) -> ChatMessage:
    """A message of an earlier turn as a prompt holds it: an answer with its tool calls in
    brief before it."""
    if said.role == "user":
        return ChatMessage("user", said.content)
    if not said.tools:
        return ChatMessage("assistant", said.content)
    tools = "; ".join(said.tools)
    return ChatMessage("assistant", f"[tools used: {tools}]\n{said.content}")


def _messages(turns: Sequence[Sequence[Said]]) -> list[ChatMessage]:
    return [_chat(m) for turn in turns for m in turn if m.content]


def _recap(
    turns: Sequence[Sequence[Said]], summary: SummaryRecord | None, usage: Usage, unread: int
) -> Recap:
    if summary is None:  # nothing summarised yet: what was not read stays out
        return Recap(_messages(turns), unread=unread, usage=usage)
    first = turns[0][0].turn if turns else summary.turn + 1
    return Recap(
        _messages(turns),
        summary.text,
        summary.turn,
        unread=max(first - 1 - summary.turn, 0),
        usage=usage,
    )


def _newest_within(costs: Sequence[int], room: int) -> int:
    """How many of the newest turns fit ``room`` together."""
    kept, spent = 0, 0
    for cost in reversed(costs):
        if spent + cost > room:
            break
        spent, kept = spent + cost, kept + 1
    return kept


def _chunks(turns: Sequence[Sequence[Said]], room: int) -> list[list[ChatMessage]]:
    """The turns' messages in runs that fit ``room`` tokens each; a message longer than
    that alone is cut to fit."""
    chunks: list[list[ChatMessage]] = [[]]
    spent = 0
    for turn in turns:
        for said in turn:
            message = _chat(said)
            if message_tokens(message) > room:
                message = ChatMessage(message.role, message.content[: room * 3])
            cost = message_tokens(message)
            if spent + cost > room and chunks[-1]:
                chunks.append([])
                spent = 0
            chunks[-1].append(message)
            spent += cost
    return [chunk for chunk in chunks if chunk]
