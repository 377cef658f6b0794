"""SummaryRepository: a thread's stored summaries (``tables.summaries``), for the context of
its runs (``netra.engine.summary``)."""

from __future__ import annotations

from collections.abc import Sequence

from netra.db.records import SummaryRecord, utcnow
from netra.db.repositories import Scoped
from netra.db.sql import Statement, Tx, execute, first

SUMMARY_NEWEST = Statement(
    "summaries: a thread's newest through one of these messages",
    "SELECT * FROM summaries WHERE user_id = :user_id"
    " AND thread_id = :thread_id AND through_id = ANY(:message_ids)"
    " ORDER BY turn DESC, created_at DESC LIMIT 1",
)
SUMMARY_INSERT = Statement(
    "summaries: a new one (another run may have written the same)",
    "INSERT INTO summaries (thread_id, through_id, user_id, turn, text, run_id, model,"
    " input_tokens, output_tokens, cost_usd, created_at) VALUES (:thread_id, :through_id,"
    " :user_id, :turn, :text, :run_id, :model, :input_tokens, :output_tokens, :cost_usd,"
    " :created_at)"
    " ON CONFLICT (thread_id, through_id) DO NOTHING",
)


class SummaryRepository(Scoped):
    def newest(self, thread_id: str, message_ids: Sequence[str]) -> Tx[SummaryRecord | None]:
        """The summary reaching furthest among those ending at one of ``message_ids``."""
        if not message_ids:
            return None
        row = yield from first(
            SUMMARY_NEWEST(user_id=self.user_id, thread_id=thread_id, message_ids=list(message_ids))
        )
        if row is None:
            return None
        usage = {k: row[k] for k in ("input_tokens", "output_tokens", "cost_usd")}
        return SummaryRecord(
            row["thread_id"], row["through_id"], row["turn"], row["text"], row["run_id"], usage
        )

    def add(self, summary: SummaryRecord, *, model: str) -> Tx[None]:
        """Store a summary; one another run stored first stands."""
        usage = summary.usage
        yield from execute(
            SUMMARY_INSERT(
                thread_id=summary.thread_id,
                through_id=summary.through_id,
                user_id=self.user_id,
                turn=summary.turn,
                text=summary.text,
                run_id=summary.run_id,
                model=model,
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                cost_usd=usage["cost_usd"],
                created_at=utcnow(),
            )
        )
