"""ContextBudget and the context windows it is given: the table's, the settings', the
default; the newest whole turns that fit, never a hole; the run's own part always sent."""

from __future__ import annotations

from pathlib import Path

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.model_ids import ModelId
from netra.models.base import ChatMessage, ToolCallRequest, ToolSpec
from netra.models.catalog import ModelCatalog, ModelRegistry
from netra.models.context import MESSAGE_OVERHEAD, ContextBudget, message_tokens, tool_tokens
from netra.models.offline import OfflineModel
from netra.models.prices import PriceTable
from netra.models.provider import Provider
from netra.services import ServiceRegistry

TOOL = ToolSpec("calculator", "Evaluate arithmetic.", {"type": "object", "properties": {}})


def _said(n: int) -> list[ChatMessage]:
    """``n`` turns, each a 40-character question and a 40-character answer."""
    said = []
    for i in range(n):
        said.append(ChatMessage("user", f"question {i:02d} ".ljust(40, "q")))
        said.append(ChatMessage("assistant", f"answer {i:02d} ".ljust(40, "a")))
    return said


def test_the_newest_whole_turns_that_fit_are_sent_after_the_system_prompt() -> None:
    turn = 2 * (MESSAGE_OVERHEAD + 10)  # two messages of 40 characters
    own = [ChatMessage("user", "the question of this run")]
    fixed = message_tokens(ChatMessage("system", "Be brief.")) + message_tokens(own[0])
    fixed += tool_tokens(TOOL)
    budget = ContextBudget(10_000, reserve_output=0)
    budget.budget = fixed + 3 * turn + turn // 2  # room for three turns and a half
    messages, report = budget.fit("Be brief.", [TOOL], _said(10), own)
    assert messages[0] == ChatMessage("system", "Be brief.")
    assert messages[-1] == own[0]
    assert [m.content[:11] for m in messages[1:-1]] == [
        "question 07",
        "answer 07 a",
        "question 08",
        "answer 08 a",
        "question 09",
        "answer 09 a",
    ]
    assert (report.turns, report.dropped, report.tokens) == (3, 7, fixed + 3 * turn)
    assert report.as_dict() == {
        "turns": 3,
        "dropped": 7,
        "summarized": 0,
        "tokens": fixed + 3 * turn,
        "window": 10_000,
    }


def test_a_turn_that_does_not_fit_ends_the_context_even_if_older_ones_would() -> None:
    said = _said(3)
    said[3] = ChatMessage("assistant", "x" * 4_000)  # turn 1's answer: a thousand tokens
    budget = ContextBudget(1_000, reserve_output=0)
    messages, report = budget.fit(None, [], said, [ChatMessage("user", "now?")])
    assert [m.content for m in messages] == [said[4].content, said[5].content, "now?"]
    assert (report.turns, report.dropped) == (1, 2)


def test_the_runs_own_part_and_its_tool_calls_are_always_sent_and_counted() -> None:
    call = ToolCallRequest("call_1", "calculator", {"expression": "2+2"})
    own = [
        ChatMessage("user", "what is 2+2?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"result": 4}', tool_call_id="call_1", name="calculator"),
    ]
    budget = ContextBudget(1_000, reserve_output=4_096)
    assert budget.budget == 750, "the reserve is at most a quarter of the window"
    messages, report = budget.fit(None, [], _said(100), own, unread=50)
    assert messages[-3:] == own
    assert report.tokens == sum(map(message_tokens, messages)) <= budget.budget
    assert report.turns + report.dropped == 150, "turns never read count as dropped"
    assert message_tokens(own[1]) > MESSAGE_OVERHEAD, "a call's name and arguments count"


def test_context_windows_come_from_the_table_the_settings_and_the_default(
    tmp_path: Path,
) -> None:
    table = PriceTable.shipped()
    assert table.window(ModelId.parse("openai:gpt-4o-mini-2024-07-18")) == 128_000
    assert table.window(ModelId.parse("anthropic:claude-sonnet-4-5-20250929")) == 200_000
    assert table.window(ModelId.parse("ollama:llama3.1")) is None
    toml = tmp_path / "netra.toml"
    toml.write_text(
        "[models]\ndefault_context_window = 32000\n"
        '[[models.context_windows]]\nmodel = "ollama:llama3.1"\ntokens = 8192\n'
        '[[models.context_windows]]\nmodel = "gpt-4.1"\ntokens = 100000\n'
    )
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated(), config_file=toml)
    builtins = ModelRegistry("model")
    builtins.register("offline", OfflineModel())
    services: ServiceRegistry[Provider] = ServiceRegistry()
    catalog = ModelCatalog(config, builtins=builtins, services=services)
    assert catalog.context_window(["offline"]) == 32_000
    assert catalog.context_window(["openai:gpt-4.1"]) == 100_000
    assert catalog.context_window(["openai:gpt-4o", "ollama:llama3.1"]) == 8_192, (
        "the smallest of a run's model and fallbacks"
    )


def test_a_summary_goes_right_after_the_system_prompt_and_counts_against_the_budget() -> None:
    budget = ContextBudget(10_000, reserve_output=0)
    earlier = [ChatMessage("user", "q2"), ChatMessage("assistant", "a2")]
    own = [ChatMessage("user", "q3")]
    plain, _ = budget.fit("be brief", [], earlier, own)
    messages, report = budget.fit(
        "be brief", [], earlier, own, summary="The user asked 1 question before.", summarized=1
    )
    assert messages[0] == ChatMessage("system", "be brief")
    assert messages[1].role == "system" and "asked 1 question" in messages[1].content
    assert messages[2:] == plain[1:]
    assert (report.turns, report.summarized, report.dropped) == (1, 1, 0)
    assert report.tokens == sum(map(message_tokens, messages))
