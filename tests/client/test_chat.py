"""``netra chat`` in a real terminal (tmux) against ``netra serve`` as its own process: it
signs in, answers with the tool steps shown, cancels on Ctrl-C, keeps its tokens 0600, and
finishes an answer across a restart of the server."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import NetraProcess, embedded
from tests.support import CanaryWatch, User, make_user

TMUX = shutil.which("tmux")
"""Installed by ``make test`` when missing, as Chromium is."""


class Terminal:
    """A tmux session of its own running one command; the test types and reads the screen."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        assert TMUX is not None, "tmux is missing: make test installs it"
        self._base = [TMUX, "-L", f"netra-test-{uuid.uuid4().hex[:8]}"]
        line = " ".join(
            [
                "env",
                "-i",
                *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                *map(shlex.quote, command),
            ]
        )
        self._tmux("new-session", "-d", "-s", "chat", "-x", "160", "-y", "50", line)
        self._tmux("set-option", "-t", "chat", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [*self._base, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "chat", "-S", "-500")

    def type(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "chat", *keys)

    async def shows(self, text: str, timeout: float = 60.0) -> str:
        """Wait until the screen shows ``text`` (the bound only stops a hung test)."""
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            if time.monotonic() > deadline:
                pytest.fail(f"the terminal never showed {text!r}:\n{screen}")
            await asyncio.sleep(0.05)
        return screen

    def close(self) -> None:
        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
async def served(tmp_path: Path, canaries: CanaryWatch) -> AsyncIterator[NetraProcess]:
    settings = {
        "models": {"offline_chunk_delay_ms": 20},
        # A restarted server takes its dead predecessor's run over once the lease is out.
        "cluster": {"lease_s": 1.0, "heartbeat_s": 0.2},
    }
    server = embedded(tmp_path / "server", canaries, settings)
    server.launch()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def user(served: NetraProcess) -> AsyncIterator[User]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        yield await make_user(http)


@pytest.fixture
def terminal(tmp_path: Path, served: NetraProcess, user: User) -> Iterator[Terminal]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "TERM": "xterm",
        "LANG": "C.UTF-8",
    }
    command = [sys.executable, "-m", "netra", "chat", "--url", served.url, "--email", user.email]
    terminal = Terminal(command, env)
    try:
        yield terminal
    finally:
        terminal.close()


async def _signed_in(terminal: Terminal, user: User) -> None:
    await terminal.shows("password:")
    terminal.type(user.password, "Enter")
    await terminal.shows("you> ")


async def test_chat_answers_with_the_calculator_step_and_keeps_its_tokens_0600(
    terminal: Terminal, user: User, tmp_path: Path
) -> None:
    await _signed_in(terminal, user)
    credentials = tmp_path / "config" / "netra" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    terminal.type("what is 12*7?", "Enter")
    screen = await terminal.shows("12*7 = 84")
    assert '⚙ calculator {"expression": "12*7"} running…' in screen
    assert "⚙ calculator done" in screen
    await terminal.shows("you> ", timeout=30)
    terminal.type("C-d")
    await terminal.shows("bye")
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600


async def test_ctrl_c_cancels_the_answer_and_the_run_ends_cancelled(
    terminal: Terminal, user: User, served: NetraProcess
) -> None:
    await _signed_in(terminal, user)
    terminal.type("count to 10000", "Enter")
    await terminal.shows("netra> 1 2 3")
    terminal.type("C-c")
    screen = await terminal.shows("[cancelled]")
    answer = screen.split("netra> ")[1].split("[cancelled]")[0]
    assert "^C cancelling…" in answer and "10000" not in answer
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        threads = (await http.get("/threads", headers=user.auth)).json()["items"]
        runs = await http.get(f"/threads/{threads[0]['id']}/runs", headers=user.auth)
    assert [run["outcome"] for run in runs.json()["items"]] == ["cancelled"]
    await terminal.shows("you> ")
    terminal.type("C-c")
    await terminal.shows("bye")


async def test_an_answer_cut_by_a_server_restart_is_finished_and_shown_once(
    terminal: Terminal, user: User, served: NetraProcess
) -> None:
    """The server is killed mid-answer and started again on its port: the chat reconnects,
    resumes where it stood, and the answer reads 1 to 300 exactly once."""
    await _signed_in(terminal, user)
    terminal.type("count to 300", "Enter")
    await terminal.shows(" 40 ")
    served.kill()
    served.launch()
    await served.wait_ready()
    screen = await terminal.shows(" 299 300\n")
    answer = screen.split("netra> ")[1].split("\n")[0].strip()
    assert answer == " ".join(str(n) for n in range(1, 301)), screen
    await terminal.shows("you> ")
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        threads = (await http.get("/threads", headers=user.auth)).json()["items"]
        runs = await http.get(f"/threads/{threads[0]['id']}/runs", headers=user.auth)
    [run] = runs.json()["items"]
    assert (run["outcome"], run["attempt"]) == ("completed", 2), run
