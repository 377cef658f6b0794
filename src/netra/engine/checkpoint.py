"""Checkpoint: what a run keeps of its steps, so that a later attempt continues it.

After each step that made tool calls the engine stores the turn (``db.turns``): the step,
what the model said, the calls it asked for and the turn's usage; what became of each call is
the ledger's (``db.ledger``). Stored turns are streamed turns: the events emitted before a
turn is written are stored first.

A later attempt — after an approval, a hand-back or a takeover — rebuilds the run's state
from the turns and the ledger: the conversation with every earlier turn and its tool results
(answered calls executed now, calls cut off mid-way run again or reported), the answer text
and usage of those turns, and the step to go on from. A step the ledger holds calls of but
no turn (the attempt died between its calls and its turn) is answered from the ledger when
the agent takes it again. The event log is output only: nothing here reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netra.agents.base import AgentDeps, AgentState, Pause, pause_for
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import RunRecord, ToolCallRecord, TurnRecord
from netra.db.sql import Tx
from netra.db.turns import TurnRepository
from netra.models.base import Usage


@dataclass(frozen=True, slots=True)
class Saved:
    """A run's checkpoint as earlier attempts left it."""

    turns: list[TurnRecord]
    ledger: dict[int, list[ToolCallRecord]]
    """The ledger's calls by step."""

    @property
    def text(self) -> str:
        """The answer text of the stored turns (the rest is streamed again)."""
        return "".join(turn.text for turn in self.turns)


class Checkpoint:
    """Process-wide; stores and restores runs' turns."""

    def __init__(self, db: DatabaseManager) -> None:
        self._db = db

    async def read(self, ctx: UserExecutionContext, run: RunRecord) -> Saved:
        return await self._db.transact(_saved(ctx, run.id))

    async def restore(self, saved: Saved, deps: AgentDeps, state: AgentState) -> Pause | None:
        """Advance ``state`` past the stored turns; a Pause when calls of the last one still
        wait for the user's answer."""
        for turn in saved.turns:
            entries = {record.tool_call_id: record for record in saved.ledger.get(turn.step, [])}
            records = [entries[call.id] for call in turn.tool_calls if call.id in entries]
            outcomes = await deps.dispatcher.replay(records)
            state.step = turn.step
            state.text.append(turn.text)
            state.usage = state.usage + Usage.of(turn.usage)
            if state.end_turn(turn.text, outcomes, Usage()):
                return pause_for(outcomes)
            state.step = turn.step + 1
        deps.dispatcher.resume(saved.ledger, from_step=state.step)
        return None

    async def record(self, ctx: UserExecutionContext, deps: AgentDeps, state: AgentState) -> None:
        """Store the turn the step ended with, once everything the step streamed is stored
        (``LostClaim`` when the attempt is no longer the run's): a turn is only ever written
        for a step whose calls the ledger holds. The run goes on without waiting for the turn
        itself: a crash before it commits means the step is asked again, its calls answered
        from the ledger."""
        turn = state.turn
        if turn is None or turn.step != state.step:
            return  # a step that made no tool calls leaves no turn
        assert ctx.run_id is not None
        run_id = ctx.run_id

        def write() -> Tx[bool]:
            yield from TurnRepository(ctx).record(run_id, turn, fenced=False)
            return True

        await deps.emitter.settle()
        await deps.emitter.store(write)


def _saved(ctx: UserExecutionContext, run_id: str) -> Tx[Saved]:
    turns = yield from TurnRepository(ctx).for_run(run_id)
    records = yield from ToolCallRepository(ctx).for_run(run_id)
    ledger: dict[int, list[ToolCallRecord]] = {}
    for record in records:
        ledger.setdefault(record.step, []).append(record)
    return Saved(turns, ledger)
