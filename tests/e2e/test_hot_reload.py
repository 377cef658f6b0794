"""Editing the config file under a running server changes a limit without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.conftest import ServerFactory
from tests.support import make_user, open_socket


async def test_a_limit_edited_in_the_config_file_takes_effect_while_serving(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text("[tiers.free]\nmax_message_chars = 20\n")
    server = server_factory(config_file=toml)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        message = "what is 6*7? " + "x" * 30
        refused = await socket.send_message(message)
        assert refused["type"] == "error" and refused["code"] == "message_too_large"

        toml.write_text("[tiers.free]\nmax_message_chars = 200\n")
        for _ in range(100):
            if server.netra.settings.tiers["free"].max_message_chars == 200:
                break
            await asyncio.sleep(0.1)
        accepted = await socket.send_message(message)
        assert accepted["type"] == "ack"
        events = await socket.run_to_end(accepted["run_id"])
        assert events[-1]["data"]["outcome"] == "completed"
        assert server.netra.config.history[-1].paths == ("tiers.free.max_message_chars",)
        await socket.close()
