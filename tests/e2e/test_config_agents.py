"""Agents defined in the config file (``[agents.<name>]``): listed, run with their own tools
only, limited to their tiers, and reloaded for new runs when the file is edited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerFactory
from tests.support import LiveServer, eventually, make_user, open_socket

CALC_ONLY = """
[agents.calc]
description = "Arithmetic only."
system_prompt = "You do sums."
tools = ["calculator"]
max_steps = 3

[agents.vip]
description = "For the pro tier."
tiers = ["pro"]
"""


def _tools_called(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["tool"] for e in events if e["type"] == "tool_completed"]


async def _agents(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    listed = await http.get("/agents", headers=auth)
    assert listed.status_code == 200, listed.text
    return {item["name"]: item["description"] for item in listed.json()["items"]}


def _edit(toml: Path, text: str) -> None:
    """Replace the file whole, so the watcher never reads it half written."""
    draft = toml.with_suffix(".draft")
    draft.write_text(text)
    draft.replace(toml)


async def _reloaded(server: LiveServer, changes: int) -> None:
    """Until the server accepted one more change of the file than ``changes``."""
    await eventually(
        lambda: len(server.netra.config.history) > changes, "the edited file is reloaded"
    )


async def test_a_config_agent_is_listed_and_answers_with_its_own_tools_only(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text(CALC_ONLY)
    server = server_factory(config_file=toml)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user = await make_user(http)
        listed = await _agents(http, user.auth)
        assert listed["calc"] == "Arithmetic only."
        assert "vip" not in listed  # a free user's tier is not among its tiers
        assert "assistant" in listed

        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 12*7 and what time is it?", agent="calc")
        assert ack["type"] == "ack", ack
        events = await socket.run_to_end(ack["run_id"])
        assert events[0]["type"] == "agent_started" and events[0]["agent"] == "calc"
        assert events[-1]["data"]["outcome"] == "completed"
        assert _tools_called(events) == ["calculator"]  # the clock is not one of its tools

        refused = await socket.send_message("hello", agent="vip")
        assert refused["type"] == "error" and refused["code"] == "permission_denied", refused
        await socket.close()


async def test_editing_the_file_adds_and_changes_agents_for_the_next_run(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text(CALC_ONLY)
    server = server_factory(config_file=toml)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("what is 2+3 and what time is it?", agent="calc")
        assert _tools_called(await socket.run_to_end(first["run_id"])) == ["calculator"]

        changes = len(server.netra.config.history)
        _edit(
            toml,
            CALC_ONLY.replace('tools = ["calculator"]', 'tools = ["clock"]')
            + '\n[agents.timekeeper]\ndescription = "Tells the time."\ntools = ["clock"]\n',
        )
        await _reloaded(server, changes)
        assert {p.split(".")[1] for p in server.netra.config.history[-1].paths} == {
            "calc",
            "timekeeper",
        }
        assert (await _agents(http, user.auth))["timekeeper"] == "Tells the time."

        again = await socket.send_message("what is 2+3 and what time is it?", agent="calc")
        assert _tools_called(await socket.run_to_end(again["run_id"])) == ["clock"]
        added = await socket.send_message("what time is it in Tokyo?", agent="timekeeper")
        events = await socket.run_to_end(added["run_id"])
        assert events[-1]["data"]["outcome"] == "completed"
        assert _tools_called(events) == ["clock"]
        await socket.close()


async def test_an_edit_naming_an_unknown_tool_changes_nothing(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text(CALC_ONLY)
    server = server_factory(config_file=toml)
    config = server.netra.config
    changes = len(config.history)
    _edit(toml, CALC_ONLY.replace('"calculator"', '"calculater"'))
    await eventually(lambda: not config.file_changed(), "the edited file is read")
    assert len(config.history) == changes
    assert server.netra.agents.definition("calc").tools == ("calculator",)
    assert config.settings.agents["calc"].tools == ["calculator"]
