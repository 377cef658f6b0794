"""Netra as real OS processes: ``netra serve`` and ``netra worker`` children of the test on
one PostgreSQL database and one Redis, that a test kills (SIGKILL), freezes (SIGSTOP, SIGCONT)
or stops (SIGTERM) like an operator or a crash would.

Every process gets a NETRA_-free environment with the test's database, Redis (a channel
prefix of its own), JWT secret and ``environment=test``, and a TOML config file with the rest:
the fake OpenAI-compatible model server of the test process (``fake:gpt-4o-mini``, answering
through a responder) and the test MCP server over HTTP, whose ``record`` tool is the side
effect that must never happen twice. Output goes to one log file per process, scanned for the
session's canaries at the end; the tail of every log is printed when the test failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from netra.db.manager import DatabaseManager
from netra.settings import DatabaseSettings
from tests.models.fake_providers import FakeProvider, Reply, openai_text, openai_tool_call
from tests.redis_process import free_port
from tests.support import CanaryWatch, User, make_user, run_netra
from tests.tools.mcp_process import HttpMcpServer

Role = Literal["serve", "worker"]
MODEL = "fake:gpt-4o-mini"
RECORD_TOOL = "rec__record"
"""The MCP server is configured as ``rec``: its ``record`` tool is ``rec__record``, side
effects ``unsafe`` (the MCP default)."""
READY_TIMEOUT_S = 60.0
"""Bound on a process's start (imports alone take seconds on a busy machine)."""


class ProcessFailed(RuntimeError):
    """A Netra process exited, or never became ready, when the test needed it."""


class NetraProcess:
    """One ``python -m netra serve|worker`` child process, restartable on the same port."""

    def __init__(
        self,
        name: str,
        role: Role,
        *,
        directory: Path,
        env: Mapping[str, str],
        settings: Mapping[str, Any],
    ) -> None:
        self.name = name
        self.role = role
        self.directory = directory
        self.port = free_port() if role == "serve" else None
        self.log = directory / "output.log"
        self.starts = 0
        self._env = dict(env)
        self._config = directory / "netra.toml"
        directory.mkdir(parents=True, exist_ok=True)
        self.configure(settings)
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self.args: tuple[str, ...] = ()
        """Options of its command after the role's own (``--app pkg.module:setup``)."""

    def __repr__(self) -> str:
        return f"<netra {self.role} {self.name} pid={self.pid}>"

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Write its settings file: read at the next launch (its data stays where it is)."""
        self._config.write_text(
            to_toml({**settings, "server": {**settings.get("server", {}), "data_dir": "data"}})
        )

    @property
    def url(self) -> str:
        if self.port is None:
            raise ValueError(f"{self.name} is a worker: it serves no HTTP")
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    @property
    def running(self) -> bool:
        """Started and not exited (a SIGSTOPped process is running)."""
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        """Start the process (returns at once; ``wait_ready`` waits for it)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        self._close_output()
        self._output = self.log.open("ab")
        self._output.write(f"---- start {self.starts} of netra {self.role} {self.name}\n".encode())
        self._output.flush()
        command = [sys.executable, "-m", "netra", "--config", str(self._config), self.role]
        if self.port is not None:
            command += ["--port", str(self.port)]
        command += self.args
        self._process = subprocess.Popen(
            command,
            cwd=self.directory,  # so no stray ./.env is read
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals from the terminal reach the test, not the child
        )

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``/ready`` says ``ready``: database, event writer, Redis and the MCP server
        all healthy. (A worker serves no HTTP: ``Cluster.start`` waits until a server lists
        it alive instead.)"""
        if self.port is None:
            self.check_running()
            return
        seen: object = "no answer"
        try:
            async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=2) as http:
                while True:
                    self.check_running()
                    try:
                        ready = await http.get(f"{self.url}/ready")
                        seen = ready.text
                        if ready.status_code == 200 and ready.json()["status"] == "ready":
                            return
                    except httpx.TransportError as exc:
                        seen = exc
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise ProcessFailed(
                f"{self.name} not ready after {timeout} s (last: {seen}):\n{self.tail()}"
            ) from None

    def check_running(self) -> None:
        if not self.running:
            raise ProcessFailed(
                f"netra {self.role} {self.name} exited with {self.returncode}:\n{self.tail()}"
            )

    # ---- what an operator or a crash does -------------------------------------------------
    def kill(self) -> None:
        """SIGKILL: the process dies at once; its sockets and connections just drop."""
        process = self._require()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    async def exited(self, timeout: float) -> int:
        """Wait until the process exits by itself; its exit code (negative: the signal)."""
        process = self._process
        if process is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise ProcessFailed(f"{self.name} still running after {timeout} s") from None

    async def stop(self) -> None:
        """SIGSTOP: the process freezes (holding its sockets and leases) until ``cont``."""
        process = self._require()
        os.kill(process.pid, signal.SIGSTOP)
        await self._until_status(lambda status: status == psutil.STATUS_STOPPED, "stopped")

    async def cont(self) -> None:
        """SIGCONT: a stopped process goes on where it was."""
        process = self._require()
        os.kill(process.pid, signal.SIGCONT)
        await self._until_status(lambda status: status != psutil.STATUS_STOPPED, "continued")

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (a graceful stop, as by an orchestrator); waits for the exit, at most
        ``timeout`` seconds (then kills it and fails). Returns the exit code."""
        process = self._require()
        os.kill(process.pid, signal.SIGTERM)
        try:
            return await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ProcessFailed(f"{self.name} still running {timeout} s after SIGTERM") from None

    def cleanup(self) -> None:
        """Kill the process and anything it started, whatever state it is in."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
        self._close_output()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _require(self) -> subprocess.Popen[bytes]:
        self.check_running()
        assert self._process is not None
        return self._process

    async def _until_status(self, wanted: Callable[[str], bool], what: str) -> None:
        process = psutil.Process(self._require().pid)
        for _ in range(2000):  # the kernel applies a signal within microseconds
            if wanted(process.status()):
                return
            await asyncio.sleep(0.005)
        raise ProcessFailed(f"{self.name} never {what}")

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None


def embedded(directory: Path, canaries: CanaryWatch, settings: Mapping[str, Any]) -> NetraProcess:
    """The default shape as its own process: one ``netra serve`` on its SQLite file, with
    none of the test run's ``NETRA_`` variables, quick password hashing and ``settings``
    over that (not launched yet)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    return NetraProcess(
        "embedded",
        "serve",
        directory=directory,
        env={
            **clean,
            "NETRA_ENVIRONMENT": "test",
            "NETRA_AUTH__JWT_SECRET": canaries.jwt_secret,
            "PYTHONUNBUFFERED": "1",
        },
        settings=merged(EMBEDDED, settings),
    )


EMBEDDED = {
    "server": {"host": "127.0.0.1"},
    "auth": {"password_time_cost": 1, "password_memory_kib": 64},
}
"""The settings every ``embedded`` process starts from."""


class Cluster:
    """The processes of one test and the world they share: database, Redis, model, tool."""

    def __init__(
        self,
        directory: Path,
        *,
        database_url: str,
        redis_url: str,
        watch: CanaryWatch,
        model: FakeProvider,
        mcp: HttpMcpServer,
        records: Path,
    ) -> None:
        self.directory = directory
        self.database_url = database_url
        self.redis_url = redis_url
        self.watch = watch
        self.model = model
        self.mcp = mcp
        self.records = records
        self.processes: list[NetraProcess] = []
        self._operator: User | None = None
        self.channel_prefix = f"netra-proc-{uuid.uuid4().hex[:8]}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
        self.env = {
            **clean,
            "NETRA_ENVIRONMENT": "test",
            "NETRA_DATABASE__URL": database_url,
            "NETRA_REDIS__URL": redis_url,
            "NETRA_REDIS__CHANNEL_PREFIX": self.channel_prefix,
            "NETRA_AUTH__JWT_SECRET": watch.jwt_secret,
            "PYTHONUNBUFFERED": "1",
        }
        self.settings: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "shutdown_grace_s": 5},
            "database": {"pool_size": 5, "max_overflow": 5},
            "models": {
                "default": MODEL,
                "providers": {
                    "fake": {
                        "kind": "openai",
                        "base_url": model.openai_url,
                        "api_key": watch.model_api_key,
                        "timeout_s": 30,
                        "max_retries": 0,
                    }
                },
            },
            "tools": {
                "mcp_servers": {
                    "rec": {
                        "transport": "http",
                        "url": mcp.url,
                        "headers": {"Authorization": f"Bearer {mcp.token}"},
                        "reconnect_max_s": 0.5,
                    }
                }
            },
            "logging": {"level": "INFO"},
        }
        """Settings of every process (the config file); each may add its own."""

    async def prepare(self) -> None:
        """Migrate the empty database once, while the MCP server starts, so that instances
        starting together find the schema in place (the migration takes no lock of its own;
        the durability tests are not about concurrent first starts)."""
        db = DatabaseManager(self.database_url, DatabaseSettings())

        async def migrate() -> None:
            try:
                await db.upgrade()
            finally:
                await db.close()

        await asyncio.gather(migrate(), asyncio.to_thread(self.mcp.start))

    def serve(self, name: str, **sections: Any) -> NetraProcess:
        """A ``netra serve`` process (not started yet) with ``sections`` over the defaults."""
        return self._process(name, "serve", sections)

    def worker(self, name: str, **sections: Any) -> NetraProcess:
        """A ``netra worker`` process (not started yet): same configuration as serve."""
        return self._process(name, "worker", sections)

    def _process(self, name: str, role: Role, sections: Mapping[str, Any]) -> NetraProcess:
        if any(p.name == name for p in self.processes):
            raise ValueError(f"a process named {name!r} exists already")
        process = NetraProcess(
            name,
            role,
            directory=self.directory / name,
            env=self.env,
            settings=merged(self.settings, sections),
        )
        self.processes.append(process)
        return process

    async def start(self, *processes: NetraProcess) -> None:
        """Launch the processes together and wait until every one is ready: servers answer
        ``/ready``, workers are listed alive in ``GET /admin/instances`` of a server."""
        for process in processes:
            process.launch()
        await asyncio.gather(*(p.wait_ready() for p in processes if p.role == "serve"))
        await asyncio.gather(*(self._listed(p) for p in processes if p.role == "worker"))

    async def _listed(self, worker: NetraProcess) -> None:
        server = next((p for p in self.processes if p.role == "serve" and p.running), None)
        if server is None:
            raise ValueError("a worker is seen through a server: start one with it")
        admin = await self.operator(server)
        seen: object = None
        try:
            async with (
                asyncio.timeout(READY_TIMEOUT_S),
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            ):
                while True:
                    worker.check_running()
                    response = await http.get("/admin/instances", headers=admin.auth)
                    seen = response.json()
                    if response.status_code == 200 and any(
                        item["pid"] == worker.pid and item["alive"]
                        for item in response.json()["items"]
                    ):
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise ProcessFailed(
                f"worker {worker.name} never listed alive; last answer {seen}:\n{worker.tail()}"
            ) from None

    async def operator(self, server: NetraProcess) -> User:
        """An administrator account (made on first use: registered, then granted the admin
        role with the CLI)."""
        if self._operator is None:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                user = await make_user(http, "operator")
            await asyncio.to_thread(self.grant_admin, user.email)
            self._operator = user
        return self._operator

    async def restart(self, process: NetraProcess) -> None:
        """Start a process that exited (killed, terminated) again, on the same port."""
        await self.start(process)

    def record_counts(self) -> Counter[str]:
        """How many times the ``record`` tool ran, per token."""
        if not self.records.exists():
            return Counter()
        return Counter(self.records.read_text(encoding="utf-8").split())

    def grant_admin(self, email: str) -> None:
        """Make a user an administrator the way an operator does: with the CLI."""
        env = {
            "NETRA_ENVIRONMENT": "test",
            "NETRA_DATABASE__URL": self.database_url,
            "NETRA_AUTH__JWT_SECRET": self.watch.jwt_secret,
        }
        done = run_netra("users", "grant-admin", email, env=env, cwd=self.directory)
        self.watch.check("netra users grant-admin output", done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr

    def close(self, *, failed: bool) -> None:
        """Kill every process, scan the logs for canaries; show the logs if the test failed."""
        for process in self.processes:
            process.cleanup()
        for process in self.processes:
            if process.log.exists():
                self.watch.check(f"output of netra {process.name}", process.log.read_bytes())
            if failed:
                print(f"\n==== last lines of netra {process.role} {process.name} ({process.log})")
                print(process.tail())


class Rotation:
    """Instances killed in turn: each cycle kills the next one and restarts it in the
    background, so it rests two cycles (with three instances) before its next kill."""

    def __init__(self, cluster: Cluster, instances: list[NetraProcess]) -> None:
        self._cluster = cluster
        self._instances = instances
        self._restarting: dict[str, asyncio.Task[None]] = {}

    def live(self) -> list[NetraProcess]:
        return [p for p in self._instances if p.running and p.name not in self._restarting]

    async def next(self, number: int) -> tuple[NetraProcess, list[NetraProcess]]:
        """The instance to kill in this cycle (up again) and the live others (at least one)."""
        victim = self._instances[number % len(self._instances)]
        while True:
            done = [n for n, t in self._restarting.items() if t.done() or n == victim.name]
            for name in done:
                await self._restarting.pop(name)  # raises if the restart failed
            survivors = [p for p in self.live() if p is not victim]
            if survivors:
                return victim, survivors
            await asyncio.wait(self._restarting.values(), return_when=asyncio.FIRST_COMPLETED)

    def kill(self, victim: NetraProcess) -> None:
        victim.kill()
        self._restarting[victim.name] = asyncio.create_task(self._cluster.restart(victim))

    async def crashed(self, victim: NetraProcess, timeout: float = 60.0) -> int:
        """Wait until the victim died by itself (a crash point); restart it in the
        background like ``kill``. Returns its exit code."""
        code = await victim.exited(timeout)
        self._restarting[victim.name] = asyncio.create_task(self._cluster.restart(victim))
        return code

    async def settle(self) -> None:
        """Every instance up again."""
        await asyncio.gather(*self._restarting.values())
        self._restarting.clear()

    async def abandon(self) -> None:
        for task in self._restarting.values():
            task.cancel()
        await asyncio.gather(*self._restarting.values(), return_exceptions=True)


# ---- the model of these tests ----------------------------------------------------------------
TOKEN = re.compile(r"token (\S+)")
WORDS = re.compile(r"(\d+) words")


def record_request(token: str, words: int = 30) -> str:
    """A user message asking the model to record ``token`` and answer in ``words`` words."""
    return f"please record token {token} and answer in {words} words"


def expected_answer(token: str, words: int = 30) -> str:
    return " ".join(["recorded", token, *(f"w{i}" for i in range(words - 2))])


class RecordScript:
    """The model: stateless, so every attempt of a run gets the answer that fits the
    conversation so far. Last message the user's → a call of ``rec__record`` with the token
    the user named (a fresh call id, as a real model gives); last message a tool result →
    the answer, one word per streamed event, ``delay_s`` before each (so a kill can land in
    the middle of it)."""

    def __init__(self, *, delay_s: float = 0.025, tool_delay_s: float = 0.15) -> None:
        self.delay_s = delay_s
        self.tool_delay_s = tool_delay_s
        """How long the tool takes: a kill can land while it runs, its outcome unknown."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages: list[dict[str, Any]] = body["messages"]
        user = next(m for m in reversed(messages) if m["role"] == "user")
        token_match = TOKEN.search(str(user["content"]))
        if token_match is None:
            return openai_text("I only record tokens.")
        token = token_match.group(1)
        words_match = WORDS.search(str(user["content"]))
        words = int(words_match.group(1)) if words_match else 30
        if messages[-1]["role"] == "user":
            arguments = json.dumps({"token": token, "delay_s": self.tool_delay_s})
            call_id = f"call_{uuid.uuid4().hex[:16]}"
            return openai_tool_call(RECORD_TOOL, arguments, call_id=call_id, delay_s=self.delay_s)
        return openai_text(expected_answer(token, words), delay_s=self.delay_s)

    def duration_s(self, words: int = 30) -> float:
        """About how long one run takes when nothing goes wrong (the tool-call reply is
        about 12 events, the answer ``words`` + 5)."""
        return (12 + words + 5) * self.delay_s + self.tool_delay_s


# ---- small things ----------------------------------------------------------------------------
def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` over it, tables merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def to_toml(tree: Mapping[str, Any]) -> str:
    """A settings tree as TOML: tables of strings, numbers, booleans and lists of those."""
    lines: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str | Path):
            return json.dumps(str(item))  # a JSON string is a TOML basic string
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(each) for each in item) + "]"
        raise TypeError(f"no TOML for {item!r}")

    def table(node: Mapping[str, Any], path: list[str]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, Mapping)}
        if path and (scalars or not node):
            lines.append("[" + ".".join(json.dumps(part) for part in path) + "]")
        lines.extend(f"{json.dumps(key)} = {value(item)}" for key, item in scalars.items())
        for key, item in node.items():
            if isinstance(item, Mapping):
                table(item, [*path, key])

    table(tree, [])
    return "\n".join(lines) + "\n"


def metric(exposition: str, name: str) -> float | None:
    """The sum of the samples called ``name`` (all labels) in Prometheus text: 0 for a metric
    declared without samples yet, None for one the exposition does not have."""
    found: float | None = None
    for family in text_string_to_metric_families(exposition):
        if family.name in (name, name.removesuffix("_total")):
            found = found or 0.0
        for sample in family.samples:
            if sample.name == name:
                found = (found or 0.0) + sample.value
    return found
