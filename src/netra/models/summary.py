"""Summaries of the turns a model's window cannot hold: the request that asks a model for one,
and the message that hands it to the next prompt.

A thread's summary grows: each request gives the model the summary so far and the turns to
add, so the turns are read once. The offline model answers a summary request without a
language model (``offline_summary``): deterministic, from the questions alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from netra.models.base import ChatMessage, ModelRequest

SUMMARY_PROMPT = (
    "You keep the memory of a conversation. Summarise it for the assistant that continues "
    "it: what the user asked and wanted, the facts, numbers and decisions in the answers, "
    "and anything left open. Start from the summary so far, if there is one, and fold the "
    "new turns into it. Plain sentences, at most {words} words."
)
SUMMARY_HEADING = "Summary of the conversation before the turns below:"
_SO_FAR = "Summary so far:"
_TO_ADD = "Turns to add:"
_QUOTE_CHARS = 80


def summary_request(
    previous: str | None, turns: Sequence[ChatMessage], *, words: int
) -> ModelRequest:
    """Ask for the summary so far with ``turns`` folded in."""
    parts = [f"{_SO_FAR}\n{previous}\n"] if previous else []
    parts.append(_TO_ADD)
    parts += [f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in turns]
    instruction = SUMMARY_PROMPT.format(words=words)
    return ModelRequest([ChatMessage("system", instruction), ChatMessage("user", "\n".join(parts))])


def is_summary_request(request: ModelRequest) -> bool:
    first = request.messages[0] if request.messages else None
    return (
        first is not None
        and first.role == "system"
        and first.content.startswith(SUMMARY_PROMPT[:40])
    )


def summary_message(text: str) -> ChatMessage:
    """The summary as a prompt holds it: after the system prompt, before the turns it
    precedes."""
    return ChatMessage("system", f"{SUMMARY_HEADING}\n{text}")


_ASKED = re.compile(r"The user asked (\d+) questions? before, from «(.*?)» to «(.*?)»\.")


def offline_summary(request: ModelRequest) -> str:
    """The offline model's summary: how many questions were asked, the first and the last —
    counted on from the summary so far."""
    text = request.messages[-1].content
    so_far, _, added = text.rpartition(_TO_ADD)
    questions = [line[6:] for line in added.splitlines() if line.startswith("User: ")]
    count, first = 0, None
    found = _ASKED.search(so_far)
    if found:
        count, first = int(found.group(1)), found.group(2)
    count += len(questions)
    if count == 0:
        return "The user asked nothing yet."
    last = _quote(questions[-1]) if questions else found.group(3) if found else ""
    first = first if first is not None else _quote(questions[0])
    noun = "question" if count == 1 else "questions"
    return f"The user asked {count} {noun} before, from «{first}» to «{last}»."


def _quote(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _QUOTE_CHARS else line[: _QUOTE_CHARS - 1] + "…"
