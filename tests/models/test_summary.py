"""The summary request and the offline model's deterministic answer to it."""

from __future__ import annotations

from netra.models.base import ChatMessage, ModelRequest, TextDelta, Usage
from netra.models.offline import OfflineModel
from netra.models.summary import is_summary_request, summary_message, summary_request


async def _answer(request_text: str | None, turns: list[ChatMessage]) -> str:
    request = summary_request(request_text, turns, words=100)
    assert is_summary_request(request)
    parts = [part async for part in OfflineModel().stream(request)]
    assert isinstance(parts[-1], Usage) and parts[-1].input_tokens > 0
    return "".join(p.text for p in parts if isinstance(p, TextDelta))


async def test_the_offline_model_counts_the_questions_and_carries_the_summary_on() -> None:
    first = await _answer(
        None,
        [
            ChatMessage("user", "what is 1*7?"),
            ChatMessage("assistant", "It is 7."),
            ChatMessage("user", "and the weather\nin Lisbon?"),
            ChatMessage("assistant", "Sunny."),
        ],
    )
    assert first == "The user asked 2 questions before, from «what is 1*7?» to «and the weather»."
    second = await _answer(first, [ChatMessage("user", "what is 3*7?")])
    assert second == "The user asked 3 questions before, from «what is 1*7?» to «what is 3*7?»."
    assert second == await _answer(first, [ChatMessage("user", "what is 3*7?")]), "deterministic"


def test_a_chat_request_is_no_summary_request_and_the_summary_goes_in_as_system() -> None:
    assert not is_summary_request(ModelRequest([ChatMessage("user", "summarise this")]))
    message = summary_message("The user asked 1 question before.")
    assert message.role == "system" and message.content.endswith("asked 1 question before.")
