"""A run's events, as OpenAI's APIs say them.

Both mappings read a run's event envelopes in seq order, from its first (``agent_started``)
to its ``agent_completed``, and keep what they need to say it: the answer's text so far
(``RunText``), the usage, the outcome.

- ``ChatCompletionStream``: ``chat.completion.chunk`` objects as the events come, then the
  ``chat.completion`` object of the whole run. Text deltas are ``choices[0].delta.content``;
  a tool step (``tool_executing``, ``tool_completed``, ``approval_required``) is a chunk with
  an empty delta and the event in the extension field ``netra: {type, …data}``.
- ``ResponseStream``: Responses API events, each numbered (``sequence_number``) from the
  position of the run event it comes from, so that a stream resumed after ``N`` — on any
  instance, from the run's stored events — sends exactly the events numbered above ``N``.
  ``response.created`` is number 0; the ``i``-th event made from the run event of seq ``s``
  is number ``STEP * s + i`` (``STEP`` = 10: one run event makes at most four).

A run continued by a later attempt (``agent_thinking`` with ``resumed``) streams again the
text of the turn it was cut off in: ``RunText`` skips as many characters as were sent past
``text_chars``, so a client is sent every character once (the re-streamed text is taken to be
the same, as it is for a model that answers the same turn alike).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STEP = 10
"""Sequence numbers a run event may make Responses events of."""
LENGTH_ERRORS = frozenset({"step_limit", "token_budget"})
"""Run errors that cut an answer short, OpenAI's ``finish_reason: "length"``."""


def model_name(agent: str, model: str) -> str:
    """The ``model`` of an answer: the run's agent and the model it ran on."""
    return f"{agent}@{model}"


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of the run, parsed from its envelope's JSON."""

    type: str
    seq: int
    data: Mapping[str, Any]

    @classmethod
    def parse(cls, text: str) -> RunEvent | None:
        """The event an envelope's text holds; None for a server frame (no seq)."""
        envelope = json.loads(text)
        if "seq" not in envelope:
            return None
        return cls(envelope["type"], int(envelope["seq"]), envelope.get("data") or {})


class RunText:
    """The answer's text as a client is sent it: every character once."""

    __slots__ = ("_skip", "text")

    def __init__(self) -> None:
        self.text = ""
        self._skip = 0
        """Characters still to drop: streamed again by a later attempt, sent already."""

    def add(self, delta: str) -> str:
        """The part of ``delta`` that is new."""
        cut = min(self._skip, len(delta))
        self._skip -= cut
        fresh = delta[cut:]
        self.text += fresh
        return fresh

    def resume(self, text_chars: int) -> None:
        """A later attempt continues the run from its first ``text_chars`` characters."""
        self._skip = max(0, len(self.text) - text_chars)


@dataclass(slots=True)
class _Ending:
    outcome: str
    usage: Mapping[str, Any]
    error: Mapping[str, Any] | None
    message_id: str | None


class _RunReader:
    """What both mappings keep of a run: its text, its answer's id, its ending."""

    def __init__(self) -> None:
        self.text = RunText()
        self.message_id: str | None = None
        self.ending: _Ending | None = None

    def _read(self, event: RunEvent) -> str:
        """Note ``event``; the new text it brings."""
        data = event.data
        if event.type == "message_delta":
            self.message_id = str(data.get("message_id") or self.message_id or "")
            return self.text.add(str(data.get("delta", "")))
        if event.type == "agent_thinking" and isinstance(data.get("resumed"), Mapping):
            self.text.resume(int(data["resumed"].get("text_chars", 0)))
        elif event.type == "agent_completed":
            self.message_id = data.get("message_id") or self.message_id
            self.ending = _Ending(
                str(data.get("outcome", "failed")),
                data.get("usage") or {},
                data.get("error"),
                self.message_id,
            )
        return ""

    @property
    def error(self) -> dict[str, str] | None:
        """Why the run did not complete; None when it did (or still runs)."""
        ending = self.ending
        if ending is None or ending.outcome == "completed":
            return None
        if ending.error:
            return {
                "code": str(ending.error.get("code")),
                "message": str(ending.error.get("message")),
            }
        return {"code": ending.outcome, "message": f"the run ended {ending.outcome}"}


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    return int(usage.get(key) or 0)


class ChatCompletionStream(_RunReader):
    """A run as Chat Completions chunks, then as one ``chat.completion``."""

    STEPS = frozenset({"tool_executing", "tool_completed", "approval_required"})

    def __init__(self, run_id: str, model: str, created: int, thread_id: str) -> None:
        super().__init__()
        self._run_id = run_id
        self._model = model
        self._created = created
        self._thread_id = thread_id

    def _chunk(self, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": self._run_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": extra.pop("finish_reason", None)}
            ],
            **extra,
        }

    def opening(self) -> dict[str, Any]:
        """The first chunk: the assistant's role."""
        return self._chunk(
            {"role": "assistant", "content": ""}, netra={"thread_id": self._thread_id}
        )

    def chunks(self, event: RunEvent, *, include_usage: bool) -> list[dict[str, Any]]:
        """The chunks ``event`` makes. The run's end makes the last: its ``finish_reason``
        and (``include_usage``) a chunk with no choices and the usage, as OpenAI sends
        them; or, for a run that failed, an ``error`` object, which OpenAI's SDKs raise."""
        fresh = self._read(event)
        if fresh:
            return [self._chunk({"content": fresh})]
        if event.type in self.STEPS:
            return [self._chunk({}, netra={"type": event.type, **event.data})]
        if self.ending is None:
            return []
        reason = self.finish_reason
        if reason is None:
            return [{"error": self.error_body()}]
        last = [self._chunk({}, finish_reason=reason)]
        if include_usage:
            last.append({**self._chunk({}), "choices": [], "usage": self.usage()})
        return last

    @property
    def finish_reason(self) -> str | None:
        """``stop`` or ``length``; None while the run goes on, or when it failed."""
        error = self.error
        if self.ending is None or (error is not None and error["code"] not in LENGTH_ERRORS):
            return None
        return "stop" if error is None else "length"

    def error_body(self) -> dict[str, Any]:
        """Why the run failed, as OpenAI's error object."""
        error = self.error or {"code": "incomplete", "message": "the run did not end"}
        return {
            "message": error["message"],
            "type": "server_error",
            "param": None,
            "code": error["code"],
        }

    def usage(self) -> dict[str, Any]:
        usage = self.ending.usage if self.ending else {}
        prompt, completion = _tokens(usage, "input_tokens"), _tokens(usage, "output_tokens")
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": _tokens(usage, "cached_input_tokens")},
        }

    def completion(self) -> dict[str, Any]:
        """The ``chat.completion`` of a run that ended with an answer (``finish_reason``)."""
        return {
            "id": self._run_id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text.text, "refusal": None},
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage(),
            "netra": {"thread_id": self._thread_id},
        }


class ResponseStream(_RunReader):
    """A run as Responses API events, numbered from the run's events; and as the
    ``response`` object at any point."""

    STEPS = ChatCompletionStream.STEPS

    def __init__(self, run_id: str, model: str, created_at: int, thread_id: str) -> None:
        super().__init__()
        self._run_id = run_id
        self._model = model
        self._created_at = created_at
        self._thread_id = thread_id

    def created(self) -> tuple[int, dict[str, Any]]:
        """``response.created``, number 0: the first event of every stream."""
        return 0, {"type": "response.created", "sequence_number": 0, "response": self.response()}

    def events(self, event: RunEvent) -> list[tuple[int, dict[str, Any]]]:
        """The Responses events ``event`` makes, each with its sequence number."""
        started = bool(self.text.text)
        fresh = self._read(event)
        made: list[dict[str, Any]] = []
        if fresh:
            if not started:
                made += [
                    {"type": "response.output_item.added", "output_index": 0, "item": self._item()},
                    {**self._at(), "type": "response.content_part.added", "part": self._part("")},
                ]
            made.append(
                {**self._at(), "type": "response.output_text.delta", "delta": fresh, "logprobs": []}
            )
        elif event.type == "agent_started":
            made.append({"type": "response.in_progress", "response": self.response()})
        elif event.type in self.STEPS:
            step = {"type": event.type, **event.data}
            made.append(
                {"type": "response.in_progress", "response": self.response(), "netra": step}
            )
        elif self.ending is not None:
            if self.text.text:
                text = self.text.text
                made += [
                    {
                        **self._at(),
                        "type": "response.output_text.done",
                        "text": text,
                        "logprobs": [],
                    },
                    {**self._at(), "type": "response.content_part.done", "part": self._part(text)},
                    {"type": "response.output_item.done", "output_index": 0, "item": self._item()},
                ]
            done = "response.completed" if self.error is None else "response.failed"
            made.append({"type": done, "response": self.response()})
        numbered = []
        for i, body in enumerate(made):
            number = STEP * event.seq + i
            numbered.append((number, {**body, "sequence_number": number}))
        return numbered

    def _at(self) -> dict[str, Any]:
        return {"item_id": self.message_id or "", "output_index": 0, "content_index": 0}

    @staticmethod
    def _part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def _item(self) -> dict[str, Any]:
        ended = self.ending is not None
        return {
            "id": self.message_id or "",
            "type": "message",
            "role": "assistant",
            "status": "completed" if ended else "in_progress",
            "content": [self._part(self.text.text)] if ended else [],
        }

    @property
    def status(self) -> str:
        if self.ending is None:
            return "in_progress"
        if self.ending.outcome == "cancelled":
            return "cancelled"
        return "completed" if self.error is None else "failed"

    def response(self) -> dict[str, Any]:
        """The ``response`` object as the events so far tell it."""
        usage = None
        if self.ending is not None:
            used = self.ending.usage
            given, made = _tokens(used, "input_tokens"), _tokens(used, "output_tokens")
            usage = {
                "input_tokens": given,
                "output_tokens": made,
                "total_tokens": given + made,
                "input_tokens_details": {"cached_tokens": _tokens(used, "cached_input_tokens")},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        return {
            "id": self._run_id,
            "object": "response",
            "created_at": self._created_at,
            "status": self.status,
            "model": self._model,
            "output": [self._item()] if self.text.text else [],
            "usage": usage,
            "error": self.error,
            "netra": {"thread_id": self._thread_id},
        }
