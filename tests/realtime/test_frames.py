"""The client frames: what a socket accepts, how deep it lets JSON nest, and what a refused
frame is told."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from netra.errors import InvalidRequest
from netra.realtime.frames import (
    CLIENT_FRAME,
    FRAME_TYPES,
    ApproveTool,
    Resume,
    SendMessage,
    json_depth,
    ref_of,
    refusal,
)


def test_every_frame_type_is_tagged_and_parsed_to_its_class() -> None:
    frames = {
        "send_message": {"content": "hi", "client_msg_id": "c1"},
        "edit_message": {"thread_id": "th_1", "message_id": "msg_1", "content": "hi again"},
        "regenerate": {"thread_id": "th_1", "message_id": "msg_2"},
        "cancel_run": {"run_id": "run_1"},
        "resume": {"after_seq": 7},
        "ping": {},
        "approve_tool": {"run_id": "run_1", "tool_call_id": "call_1", "decision": "deny"},
    }
    assert set(frames) == FRAME_TYPES
    for kind, fields in frames.items():
        frame = CLIENT_FRAME.validate_python({"type": kind, "ref": "r", **fields})
        assert frame.type == kind and frame.ref == "r"
    assert CLIENT_FRAME.validate_python({"type": "resume", "after_seq": 0}) == Resume(
        type="resume", after_seq=0
    )
    approve = CLIENT_FRAME.validate_python(frames_of("approve_tool", frames))
    assert isinstance(approve, ApproveTool) and approve.decision == "deny"


def frames_of(kind: str, frames: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"type": kind, **frames[kind]}


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "send_message"},
        {"type": "send_message", "content": ""},
        {"type": "send_message", "content": "x", "extra": 1},
        {"type": "send_message", "content": "x", "thread_id": ""},
        {"type": "send_message", "content": "x", "client_msg_id": "c" * 101},
        {"type": "send_message", "content": "lone \ud800 surrogate"},
        {"type": "ping", "ref": "\udfff"},
        {"type": "ping", "ref": "r" * 101},
        {"type": "resume", "after_seq": -1},
        {"type": "resume", "after_seq": "7"},
        {"type": "resume", "after_seq": 1.5},
        {"type": "resume", "after_seq": 2**63},
        {"type": "approve_tool", "run_id": "r", "tool_call_id": "c", "decision": "maybe"},
        {"type": "launch_missiles"},
        {"content": "no type"},
    ],
)
def test_malformed_frames_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CLIENT_FRAME.validate_python(raw)


def test_valid_unicode_passes_untouched() -> None:
    text = "naïve 😀 — 日本語"
    frame = CLIENT_FRAME.validate_python({"type": "send_message", "content": text})
    assert isinstance(frame, SendMessage) and frame.content == text
    # The surrogate pair JSON uses for 😀 decodes to one valid character.
    parsed = json.loads('{"type": "send_message", "content": "\\ud83d\\ude00"}')
    assert CLIENT_FRAME.validate_python(parsed).content == "😀"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("s", 0), ([], 1), ({}, 1), ({"a": [1, {"b": []}]}, 4), ([[[[[]]]]], 5)],
)
def test_json_depth_counts_nesting(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_walks_deep_input_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001


def refused(raw: object) -> InvalidRequest:
    with pytest.raises(ValidationError) as invalid:
        CLIENT_FRAME.validate_python(raw)
    return refusal(raw, invalid.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "send_message"}, "invalid send_message frame: content: Field required"),
        ({"type": "launch_missiles"}, "unknown frame type 'launch_missiles'"),
        # Found by the fuzzer (test_fuzz_frames): the NUL of a field name was echoed.
        (
            {"type": "ping", "\x00": None},
            "invalid ping frame: '\\x00': Extra inputs are not permitted",
        ),
        ({"type": "t" * 60_000}, f"unknown frame type {'t' * 40!r}…"),
        ({"type": [0] * 5_000}, f"unknown frame type {'[0' + ', 0' * 12}, …"),
        (
            {"type": "ping", "k" * 60_000: 1},
            f"invalid ping frame: {'k' * 40!r}…: Extra inputs are not permitted",
        ),
    ],
)
def test_a_refusal_quotes_the_clients_names_short_and_escaped(raw: object, message: str) -> None:
    assert refused(raw).message == message


def test_a_refusal_lists_a_few_problems_however_many_the_frame_has() -> None:
    # Found by the fuzzer: one line per extra field, so a 64 KiB frame of them got a
    # message several times its size.
    problem = refused({"type": "ping", **{f"x{i}": i for i in range(8_000)}})
    assert problem.code == "invalid_frame"
    assert problem.message.endswith("x4: Extra inputs are not permitted; and 7995 more")
    assert len(problem.message) < 300


@pytest.mark.parametrize(
    ("raw", "ref"),
    [
        ({"type": "ping", "ref": "r1", "extra": 1}, "r1"),
        ({"ref": "i" * 100}, "i" * 100),
        # Found by the fuzzer: a ref too long to be valid was echoed all the same.
        ({"ref": "i" * 101}, None),
        ({"ref": "\ud800"}, None),
        ({"ref": "a\x00"}, None),
        ({"ref": 7}, None),
        (["ref"], None),
    ],
)
def test_only_a_valid_ref_is_echoed(raw: object, ref: str | None) -> None:
    assert ref_of(raw) == ref
