"""The client frames: what a socket accepts, and how deep it lets JSON nest."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from netra.realtime.frames import (
    CLIENT_FRAME,
    FRAME_TYPES,
    ApproveTool,
    Resume,
    SendMessage,
    json_depth,
)


def test_every_frame_type_is_tagged_and_parsed_to_its_class() -> None:
    frames = {
        "send_message": {"content": "hi", "client_msg_id": "c1"},
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
