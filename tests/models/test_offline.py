from __future__ import annotations

import pytest

from netra.models.base import ChatMessage, ModelRequest, TextDelta, ToolCallRequest, Usage
from netra.models.offline import (
    OfflineModel,
    asks_for_time,
    count_to,
    find_expression,
    find_timezone,
)
from netra.tools.calculator import calculator
from netra.tools.clock import clock

TOOLS = (calculator.spec, clock.spec)


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("what is 12*7?", "12*7"),
        ("What's 3 + 4 * 2", "3 + 4 * 2"),
        ("compute (1+2)/3 please", "(1+2)/3"),
        ("12 times 7", "12 * 7"),
        ("what is sqrt(81)?", "sqrt(81)"),
        ("hello there", None),
        ("I have 3 cats", None),
    ],
)
def test_arithmetic_is_recognised(text: str, expression: str | None) -> None:
    assert find_expression(text) == expression


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("what time is it in Tokyo?", "Asia/Tokyo"),
        ("what time is it in new york", "America/New_York"),
        ("time in Europe/Paris now", "Europe/Paris"),
        ("what time is it", None),
        ("the time in UTC", "UTC"),
    ],
)
def test_time_zones_are_recognised(text: str, zone: str | None) -> None:
    assert asks_for_time(text)
    assert find_timezone(text) == zone


async def _collect(model: OfflineModel, messages: list[ChatMessage]) -> list[object]:
    return [part async for part in model.stream(ModelRequest(messages, TOOLS))]


async def test_the_offline_model_calls_tools_then_reports_their_results() -> None:
    model = OfflineModel()
    parts = await _collect(model, [ChatMessage("user", "what is 12*7 and what time is it?")])
    calls = [p for p in parts if isinstance(p, ToolCallRequest)]
    assert [c.name for c in calls] == ["calculator", "clock"]
    assert isinstance(parts[-1], Usage)
    results = [
        ChatMessage("assistant", "", tool_calls=tuple(calls)),
        ChatMessage(
            "tool",
            '{"expression": "12*7", "result": 84}',
            tool_call_id=calls[0].id,
            name="calculator",
        ),
        ChatMessage(
            "tool",
            '{"timezone": "UTC", "time": "10:00", "weekday": "Tuesday", "date": "24 November"}',
            tool_call_id=calls[1].id,
            name="clock",
        ),
    ]
    parts = await _collect(model, [ChatMessage("user", "what is 12*7?"), *results])
    text = "".join(p.text for p in parts if isinstance(p, TextDelta))
    assert "12*7 = 84" in text and "10:00" in text and "offline model" in text


async def test_the_offline_model_is_deterministic_and_says_what_it_is() -> None:
    model = OfflineModel()
    first = await _collect(model, [ChatMessage("user", "hi, who are you?")])
    second = await _collect(model, [ChatMessage("user", "hi, who are you?")])
    assert first == second
    text = "".join(p.text for p in first if isinstance(p, TextDelta))
    assert "offline model" in text and "hi, who are you?" in text


async def test_count_to_n_streams_the_numbers_one_word_per_chunk() -> None:
    parts = await _collect(OfflineModel(), [ChatMessage("user", "Count to 12.")])
    deltas = [p.text for p in parts if isinstance(p, TextDelta)]
    assert deltas == ["1", *(f" {number}" for number in range(2, 13))]
    assert not [p for p in parts if isinstance(p, ToolCallRequest)]
    assert isinstance(parts[-1], Usage)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("count to 500", 500),
        ("  COUNT TO 3!  ", 3),
        ("count to 10000", 10_000),
        ("count to 0", None),
        ("count to 10001", None),
        ("count to five", None),
        ("please count to 5", None),
        ("count to 5 and what is 2*3?", None),
    ],
)
def test_only_a_message_that_is_just_count_to_n_counts(text: str, limit: int | None) -> None:
    assert count_to(text) == limit
