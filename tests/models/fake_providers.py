"""A fake model provider: a real HTTP server on 127.0.0.1 that speaks OpenAI's chat
completions and Anthropic's messages APIs, answering each request with the next scripted
reply (streamed server-sent events, an HTTP error, a hang, or garbage) — or, once the
scripted replies are used up, with what its responder makes of the request body.

A queue of replies fits one server that makes its calls in a known order. Several server
processes that are killed in the middle of a call, and whose runs are taken over and call
again, need a responder instead: a function of the request alone, so any attempt of a run
gets the answer that fits the conversation so far.

Replies are built with the functions below; every request body and its headers are kept.
Health probes (``GET /v1/models``) are counted apart and take no scripted reply; a provider
that is ``down`` answers every request, probes included, with HTTP 503.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FAKE_KEY = "sk-test-not-a-real-key-0000"


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    events: Sequence[str] = ()
    """Server-sent event frames, streamed in order."""
    status: int = 200
    body: dict[str, Any] | None = None
    """JSON body of an error reply."""
    hang_before: bool = False
    """Never send the response headers (until the server stops)."""
    hang_after: int | None = None
    """Stream this many events, then stall (until ``resume`` is set, or the server stops)."""
    resume: threading.Event | None = None
    """Ends the stall of ``hang_after``: the rest of the events follow."""
    delay_s: float = 0.0
    """Pause before each streamed event, so a reply takes a while to arrive."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Responder = Callable[[dict[str, Any]], Reply]
"""Makes the reply to one request from its JSON body."""


@dataclass
class FakeProvider:
    url: str
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    responder: Responder | None = None
    """Answers requests once ``replies`` is empty (None: an HTTP 500 says none is left)."""
    down: bool = False
    """Answer every request, health probes included, with HTTP 503 (a replica that is out)."""
    probes: int = 0
    """Health probes received."""
    probe_delay_s: float = 0.0
    """How long a health probe waits before its answer (a replica slow to list its models)."""
    probes_answered: int = 0
    """Health probes answered (after ``probe_delay_s``)."""

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def _stall(self) -> None:
        await asyncio.to_thread(self.stopping.wait)

    async def _answer(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        if self.down:
            reply = error(503, "this replica is down")
        elif self.replies:
            reply = self.replies.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = error(500, "no reply scripted")
        if reply.hang_before:
            await self._stall()
        if reply.status != 200:
            return JSONResponse(reply.body or {}, status_code=reply.status)

        async def stream() -> AsyncIterator[str]:
            for index, frame in enumerate(reply.events):
                if reply.hang_after is not None and index == reply.hang_after:
                    if reply.resume is None:
                        await self._stall()
                        return
                    await asyncio.to_thread(reply.resume.wait)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                yield frame

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def _models(self, _request: Request) -> Response:
        self.probes += 1
        if self.probe_delay_s:
            await asyncio.sleep(self.probe_delay_s)
        self.probes_answered += 1
        if self.down:
            return JSONResponse(error(503, "this replica is down").body, status_code=503)
        model = {"id": "fake", "object": "model", "created": 1, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [model]})


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider("")
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", provider._answer, methods=["POST"]),
            Route("/v1/messages", provider._answer, methods=["POST"]),
            Route("/v1/models", provider._models, methods=["GET"]),
        ]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake provider failed to start")
        time.sleep(0.01)
    provider.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        yield provider
    finally:
        provider.stopping.set()
        server.should_exit = True
        thread.join(timeout=30)


# ---- replies ---------------------------------------------------------------------------------
def error(status: int, message: str) -> Reply:
    return Reply(status=status, body={"error": {"message": message, "type": "fake_error"}})


def hang() -> Reply:
    return Reply(hang_before=True)


def garbage() -> Reply:
    return Reply(events=("data: this is not json at all\n\n",))


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _data(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "fake",
            "choices": [choice],
        }
    )


def _openai_usage(usage: tuple[int, int], cached: int = 0) -> str:
    details = {"prompt_tokens_details": {"cached_tokens": cached}} if cached else {}
    return _data(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "fake",
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
                **details,
            },
        }
    )


def openai_text(
    text: str,
    *,
    usage: tuple[int, int] = (20, 10),
    cached: int = 0,
    finish: str = "stop",
    delay_s: float = 0.0,
) -> Reply:
    """The text streamed word by word (one event per word, ``delay_s`` before each event)."""
    words = text.split(" ")
    frames = [_chunk({"role": "assistant", "content": ""})]
    frames += [_chunk({"content": w if i == 0 else f" {w}"}) for i, w in enumerate(words)]
    frames += [_chunk({}, finish), _openai_usage(usage, cached), "data: [DONE]\n\n"]
    return Reply(events=tuple(frames), delay_s=delay_s)


def openai_tool_call(
    name: str,
    arguments: str,
    *,
    call_id: str = "call_fake_1",
    usage: tuple[int, int] = (30, 12),
    delay_s: float = 0.0,
) -> Reply:
    """A tool call whose arguments arrive in fragments of 4 characters."""
    frames = [
        _chunk({"role": "assistant", "content": None}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        ),
    ]
    for start in range(0, len(arguments), 4):
        piece = arguments[start : start + 4]
        frames.append(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    frames += [_chunk({}, "tool_calls"), _openai_usage(usage), "data: [DONE]\n\n"]
    return Reply(events=tuple(frames), delay_s=delay_s)


def _event(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"


def _anthropic_start(input_tokens: int, cache_read: int = 0) -> str:
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "fake",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_read_input_tokens": cache_read,
        },
    }
    return _event("message_start", {"message": message})


def _anthropic_end(stop_reason: str, output_tokens: int) -> list[str]:
    return [
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        _event("message_stop", {}),
    ]


def anthropic_text(
    text: str,
    *,
    usage: tuple[int, int] = (20, 10),
    cache_read: int = 0,
    stop_reason: str = "end_turn",
) -> Reply:
    """``usage``: input tokens not from the cache (as Anthropic counts them), output;
    ``cache_read``: input tokens read from the prompt cache."""
    words = text.split(" ")
    frames = [
        _anthropic_start(usage[0], cache_read),
        _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        'event: ping\ndata: {"type": "ping"}\n\n',
    ]
    for i, word in enumerate(words):
        delta = {"type": "text_delta", "text": word if i == 0 else f" {word}"}
        frames.append(_event("content_block_delta", {"index": 0, "delta": delta}))
    frames.append(_event("content_block_stop", {"index": 0}))
    frames += _anthropic_end(stop_reason, usage[1])
    return Reply(events=tuple(frames))


def anthropic_tool_use(
    name: str,
    arguments: str,
    *,
    call_id: str = "toolu_fake_1",
    preamble: str = "Let me check.",
    usage: tuple[int, int] = (30, 12),
) -> Reply:
    """A text block, then a tool_use block whose input arrives in fragments of 4 characters."""
    frames = [
        _anthropic_start(usage[0]),
        _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        _event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": preamble}}
        ),
        _event("content_block_stop", {"index": 0}),
        _event(
            "content_block_start",
            {
                "index": 1,
                "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
            },
        ),
    ]
    for start in range(0, len(arguments), 4):
        delta = {"type": "input_json_delta", "partial_json": arguments[start : start + 4]}
        frames.append(_event("content_block_delta", {"index": 1, "delta": delta}))
    frames.append(_event("content_block_stop", {"index": 1}))
    frames += _anthropic_end("tool_use", usage[1])
    return Reply(events=tuple(frames))
