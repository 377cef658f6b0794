"""Hostile frames on a live socket: every one is answered, and the socket lives on.

Hypothesis generates what a hostile or broken client may send on ``/ws``: arbitrary JSON
(deep, wide, huge numbers, ``NaN``, lone surrogates and NUL as ``\\u`` escapes, long
strings), frames that are almost valid (the right ``type``, fields missing, extra, of the
wrong type or just past a bound), text that is not JSON, binary frames, invalid UTF-8 — and
valid frames among them. All go to one socket of one user of one live server.

Each frame is followed by a ``ping``. One task reads a socket's frames and handles them one
after another, and everything the server sends goes through the socket's one outgoing queue,
so frames are answered in order: what arrives before the ``pong`` (events aside) answers the
fuzzed frame. Every frame gets exactly one answer — or, where the protocol says so (a frame
over ``websocket.max_frame_bytes``: 1009; a text frame that is not UTF-8: 1007), a close
with that code and a reason; then the client reconnects. Never silence, never 1011 or 1006,
never an ERROR in the server's log.

The examples are derandomized: every run (and CI) tries the same ones, so a green run stays
green until the code changes. To explore further locally, run with more random examples::

    NETRA_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/realtime/test_fuzz_frames.py -k sqlite

A failure prints the shrunk frame; pin it below with ``@example`` and fix the cause.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from netra.settings import WebSocketSettings
from tests.conftest import ServerFactory
from tests.support import LiveServer, Socket, make_user, open_socket

EXAMPLES = int(os.environ.get("NETRA_FUZZ_EXAMPLES", "0"))
"""More examples, drawn at random, for a longer local run; 0: the fixed CI set."""
LIMIT = WebSocketSettings().max_frame_bytes
"""Where generated sizes cluster: around the default frame size limit."""
ANSWER_S = 5.0
"""Bound on waiting for one answer: reached only by a server that stays silent."""


# ---- the wire ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Wire:
    """One WebSocket message as the client puts it on the wire."""

    data: str | bytes
    text: bool = True
    """A text message (``data`` may then be bytes that are not UTF-8) or a binary one."""
    pieces: int = 1
    """Frames the message is sent in: more than one is a fragmented message."""

    def fragments(self, data: str | bytes) -> str | bytes | list[str | bytes]:
        """``data`` (this message's, or the same with a run id in it) as it is sent."""
        if self.pieces == 1:
            return data
        cuts = [len(data) * i // self.pieces for i in range(self.pieces + 1)]
        return [data[start:end] for start, end in itertools.pairwise(cuts)]

    def size(self) -> int:
        return len(self.data.encode() if isinstance(self.data, str) else self.data)

    def expected_close(self, max_frame_bytes: int) -> int | None:
        """The close code the protocol demands for this message, if any."""
        if self.size() > max_frame_bytes:
            return 1009
        if self.text and isinstance(self.data, bytes):
            try:
                self.data.decode()
            except UnicodeDecodeError:
                return 1007
        return None

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 300 else self.data[:300]
        more = "" if shown is self.data else f" …({len(self.data)} long)"
        pieces = f", pieces={self.pieces}" if self.pieces > 1 else ""
        return f"Wire({shown!r}{more}, text={self.text}{pieces})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis shows a failing example: long data cut short."""
        printer.text(repr(self))


@dataclass(frozen=True)
class Raw:
    """JSON text placed into a frame as it is: what ``json.dumps`` would refuse or rewrite
    (a 10,000-digit number, ``Infinity``, nesting 20,000 deep)."""

    text: str


def encode(value: object) -> str:
    """JSON text of ``value``; strings are ASCII-escaped, so a lone surrogate or a NUL goes
    on the wire as ``\\ud800`` or ``\\u0000``, and floats may be ``NaN`` or ``Infinity``."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{encode(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(item) for item in value) + "]"
    return json.dumps(value)


# ---- strategies --------------------------------------------------------------------------
KNOWN_RUN = "@known-run"
"""Stands for the run of the socket's latest ``ack``: the client puts its id in its place."""
chars = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\ufeff"])
"""Any character, and often the ones text checks exist for: NUL and lone surrogates."""
odd_strings = st.sampled_from(
    ["", " ", "\t\n", "\x00", "a\x00b", "\ud800", "\udfff", "\ud83d\ude00", "\u2028",
     "x" * 100, "x" * 101, "k" * 5_000, "ping", "PING", "ping ", "approve", "deny"]
)  # fmt: skip
strings = (
    odd_strings
    | st.text(chars, max_size=20)
    | st.builds(lambda c, n: c * n, chars, st.integers(0, LIMIT + 100))
)
numbers = (
    st.integers()
    | st.floats()
    | st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63), 2**64, 1.5, -0.0, 1e308])
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1E-400", "0.1e1"]).map(Raw)
    | st.builds(
        lambda sign, digits: Raw(f"{sign}1{'0' * digits}"),
        st.sampled_from(["", "-"]),
        st.integers(0, 10_000),
    )
)
nested = st.builds(
    lambda depth, opener: Raw(opener * depth + "1" + ("]" if opener == "[" else "}") * depth),
    st.integers(1, LIMIT // 2 + 10),
    st.sampled_from(["[", '{"a":']),
)
wide = st.builds(
    lambda n, kind: Raw(
        "[" + ",".join(["0"] * n) + "]"
        if kind == "list"
        else "{" + ",".join(f'"k{i}":{i}' for i in range(n)) + "}"
    ),
    st.integers(0, 5_000),
    st.sampled_from(["list", "dict"]),
)
scalars = st.none() | st.booleans() | numbers | strings
FIELDS = ["type", "ref", "content", "thread_id", "agent", "client_msg_id", "run_id",
          "after_seq", "tool_call_id", "decision"]  # fmt: skip
keys = st.sampled_from(FIELDS) | odd_strings | st.text(chars, max_size=12)
json_values = st.recursive(
    scalars | nested | wide,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
ids = st.sampled_from([KNOWN_RUN, "i" * 99, "i" * 100, "i" * 101]) | st.text(
    st.characters(exclude_characters="\x00"), min_size=1, max_size=12
)
TEMPLATES: dict[str, dict[str, object]] = {
    "send_message": {"content": "what is 2+2?", "thread_id": "th_nope", "client_msg_id": "c"},
    "cancel_run": {"run_id": KNOWN_RUN},
    "resume": {"after_seq": 0},
    "ping": {},
    "approve_tool": {"run_id": KNOWN_RUN, "tool_call_id": "call_nope", "decision": "approve"},
}
"""A valid frame of every type, for the almost-valid ones to break."""
odd_values = (
    st.sampled_from([None, True, False, 0, 1, -1, 1.0, 2**63, [], {}]) | strings | json_values
)


@st.composite
def almost_valid(draw: st.DrawFn) -> str:
    """A valid frame with one to three fields dropped, added or given an odd value, or
    flooded with extra fields."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    frame: dict[str, object] = {"type": kind, **TEMPLATES[kind]}
    for _ in range(draw(st.integers(1, 3))):
        change = draw(st.sampled_from(["set", "drop", "flood"]))
        if change == "set":
            frame[draw(keys)] = draw(odd_values)
        elif change == "drop":
            frame.pop(draw(st.sampled_from(FIELDS)), None)
        else:
            frame.update((f"x{i}", i) for i in range(draw(st.integers(1, 8_000))))
    return encode(frame)


valid = st.one_of(
    st.just({"type": "ping"}),
    st.builds(lambda ref: {"type": "ping", "ref": ref}, ids),
    st.builds(lambda seq: {"type": "resume", "after_seq": seq}, st.integers(0, 5)),
    st.builds(lambda run: {"type": "cancel_run", "run_id": run}, ids),
    st.builds(
        lambda run, call, decision: {
            "type": "approve_tool",
            "run_id": run,
            "tool_call_id": call,
            "decision": decision,
        },
        ids,
        ids,
        st.sampled_from(["approve", "deny"]),
    ),
    # A retried client_msg_id stores nothing new: these start three runs at most.
    st.sampled_from(["fuzz-1", "fuzz-2", "fuzz-3"]).map(
        lambda c: {"type": "send_message", "content": "what is 2+2?", "client_msg_id": c}
    ),
).map(encode)
not_json = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", " ", "{", "}", "[]", "null", "NaN", "'ping'", "{'type': 'ping'}", '{"type":"ping"',
     '{"type":"ping"}}', '{"type":"ping"}{"type":"ping"}', '\ufeff{"type":"ping"}',
     '{"type":"ping","type":"send_message"}', '{"type":"resume","after_seq":1,"after_seq":-1}',
     '{"type":"ping"}\x00', '{"type":"ping","ref":"\\ud800\\udc00"}', '{"type":"p\\u0069ng"}']
)  # fmt: skip
not_utf8 = st.builds(
    lambda head, bad: head + bad,
    st.binary(max_size=12),
    st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"]),
)
not_text = st.builds(
    Wire, st.binary(max_size=40) | valid.map(str.encode) | not_utf8, text=st.booleans()
)
"""Binary frames, and text frames of raw bytes: UTF-8 or not."""
messages = st.one_of(
    almost_valid().map(Wire),
    almost_valid().map(Wire),
    valid.map(Wire),
    json_values.map(encode).map(Wire),
    (not_json | nested.map(encode) | wide.map(encode)).map(Wire),
    not_text,
)
"""Almost-valid frames twice as often as the rest: they reach furthest into the handling."""
frames = st.builds(replace, messages, pieces=st.integers(1, 3))
"""Sent whole, or fragmented."""


# ---- the client -----------------------------------------------------------------------------
@dataclass
class Client:
    """A signed-in user's socket that reconnects after a close the protocol demands."""

    server: LiveServer
    token: str
    socket: Socket | None = None
    known_run: str = "run_none_yet"
    """The run of the latest ``ack``: what ``KNOWN_RUN`` stands for."""

    def __repr__(self) -> str:  # shown with every failing example: not every frame so far
        return f"Client(known_run={self.known_run!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    async def exchange(self, wire: Wire) -> list[dict[str, Any]] | Close | None:
        """Send ``wire``, then a ``ping``: the two answers that come back (events aside), or
        the close frame the server sent (``None``: the connection dropped without one)."""
        if self.socket is None:
            self.socket = await open_socket(self.server, self.token)
        socket = self.socket
        data = wire.data
        if isinstance(data, str):
            data = data.replace(KNOWN_RUN, self.known_run)
        answers: list[dict[str, Any]] = []
        try:
            await socket.conn.send(wire.fragments(data), text=wire.text)
            await socket.send({"type": "ping"})
            while len(answers) < 2:
                try:
                    frame = await socket.recv(ANSWER_S)
                except TimeoutError:
                    pytest.fail(f"no answer to {wire!r} (got {answers})")
                if "seq" not in frame:
                    answers.append(frame)
        except ConnectionClosed as closed:
            self.socket = None
            return closed.rcvd
        if answers[0].get("type") == "ack":
            self.known_run = answers[0]["run_id"]
        return answers

    async def aclose(self) -> None:
        if self.socket is not None:
            await self.socket.close()


@pytest.fixture
async def client(server_factory: ServerFactory) -> AsyncIterator[Client]:
    """One server, one user, one socket for every example. The frame budget is lifted: each
    example sends two frames and waits, faster than a person types, and the rate limit has
    tests of its own."""
    server = server_factory(websocket={"frames_per_s": 100_000, "frame_burst": 100_000})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user = await make_user(http)
    fuzzer = Client(server, user.token)
    try:
        yield fuzzer
    finally:
        await fuzzer.aclose()


# ---- the property ------------------------------------------------------------------------
MESSAGE_MAX = 1_000
"""Longest error message expected, whatever the frame."""
ANSWER_TYPES = {"error", "pong", "ack", "resumed", "tool_decision", "cancel_accepted"}


def check_answer(answer: dict[str, Any], wire: Wire) -> None:
    assert answer.get("type") in ANSWER_TYPES, (wire, answer)
    if answer["type"] != "error":
        return
    assert set(answer) >= {"code", "message", "ref"}, (wire, answer)
    assert answer["code"] != "internal_error", (wire, answer)
    message, ref = answer["message"], answer["ref"]
    # Says what is wrong without echoing the frame: short, and no NUL (nor lone surrogate,
    # which could not have been sent).
    assert isinstance(message, str) and 0 < len(message) <= MESSAGE_MAX, (wire, answer)
    assert "\x00" not in message, (wire, answer)
    # Only a valid ref is echoed.
    assert ref is None or (len(ref) <= 100 and "\x00" not in ref), (wire, answer)


@settings(
    max_examples=EXAMPLES or 300,
    derandomize=not EXAMPLES,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one server and socket for all examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(wire=frames)
# What it found, shrunk, fixed (each also has a plain test where it was fixed):
@example(wire=Wire(b"\x1f\xe2\x82"))  # not UTF-8: a traceback at ERROR, and no close reason
@example(wire=Wire("x" * (LIMIT + 1)))  # too large: the 1009 was often lost to a reset (1006)
@example(wire=Wire('{"type":"ping","\\u0000":null}'))  # the NUL of a field name echoed
@example(wire=Wire(encode({"type": "ping", **{f"x{i}": i for i in range(27)}})))  # one line each
@example(wire=Wire(encode({"type": "ping", "ref": "i" * 101})))  # an invalid ref echoed
async def test_every_hostile_frame_is_answered_and_the_socket_lives_on(
    client: Client, caplog: pytest.LogCaptureFixture, wire: Wire
) -> None:
    caplog.clear()  # the server runs in a thread of this process: its records land here
    expected_close = wire.expected_close(client.server.netra.settings.websocket.max_frame_bytes)
    outcome = await client.exchange(wire)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"{wire!r} logged: {[r.getMessage() for r in errors]}"
    if expected_close is not None:
        assert isinstance(outcome, Close), (wire, outcome)
        assert (outcome.code, bool(outcome.reason)) == (expected_close, True), (wire, outcome)
        return
    assert isinstance(outcome, list), f"{wire!r} closed the socket: {outcome}"
    answer, pong = outcome
    check_answer(answer, wire)
    assert pong == {"type": "pong"}, (wire, outcome)
