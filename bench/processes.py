"""Server processes a benchmark starts, watches and always stops.

``ServerProcess`` is ``python -m netra serve`` on a free port of 127.0.0.1 with a throwaway
data dir; subclasses start other servers the same way (the LangGraph dev server, a raw
uvicorn WebSocket server) by naming their command, their environment and the path that
answers 200 once they are ready. ``cpus`` pins a server to those cores (``taskset -c``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.05


class SetupError(Exception):
    """The server or the users could not be brought up; nothing was measured."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


class ServerProcess:
    """`python -m netra serve` on a free port with a fresh data dir; always cleaned up."""

    name = "netra"
    ready_path = "/ready"
    """Answers 200 once the server takes requests."""

    def __init__(
        self, extra_env: dict[str, str], index: int = 0, *, cpus: str | None = None
    ) -> None:
        self.index = index
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-bench-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.stdout_path = self.root / "server.stdout.log"
        self.stderr_path = self.root / "server.stderr.log"
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.cpus = cpus
        self.command = self.server_command()
        self.extra_env = extra_env
        self.proc: subprocess.Popen[bytes] | None = None
        self._t0 = 0.0
        self.startup_s: float | None = None
        self.exit_code: int | None = None
        self.shutdown_s: float | None = None

    def server_command(self) -> list[str]:
        return [sys.executable, "-m", "netra", "serve", "--host", HOST, "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        env = os.environ.copy()
        env["NETRA_SERVER__DATA_DIR"] = str(self.data_dir)
        src = REPO_ROOT / "src"
        if (src / "netra").is_dir():
            # Run the checkout under test even when the venv has no (editable) install of it.
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
        return env

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        env = self.environment()
        env.update(self.extra_env)
        # Every server keeps its bytecode, as an installed one does: where the machine sets
        # PYTHONDONTWRITEBYTECODE (these do) each start would compile its modules again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._t0 = time.perf_counter()
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
            self.proc = subprocess.Popen(
                [*pin, *self.command],  # taskset execs the server: same pid
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # our Ctrl-C reaches us only; we stop the server
            )

    def wait_ready(self) -> None:
        """Poll `ready_path` until 200; `startup_s` is the time from `Popen` to that answer."""
        assert self.proc is not None
        t0 = self._t0
        deadline = t0 + READY_TIMEOUT_S
        last_error = "no answer yet"
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise SetupError(
                        f"{self.name} server {self.index} exited with status "
                        f"{self.proc.returncode} before ready\n" + self.logs()
                    )
                try:
                    response = client.get(self.ready_path)
                except httpx.HTTPError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        self.startup_s = time.perf_counter() - t0
                        return
                    last_error = f"{response.status_code} {response.text[:300]}"
                time.sleep(READY_POLL_S)
        raise SetupError(
            f"{self.name} server {self.index}: GET {self.ready_path} not 200 within "
            f"{READY_TIMEOUT_S:.0f} s ({last_error})\n" + self.logs()
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def logs(self) -> str:
        parts = []
        for name, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            text = tail(path)
            if text.strip():
                parts.append(f"--- {self.name} server {self.index} {name} (tail) ---\n{text}")
        return "\n".join(parts) or f"(the {self.name} server wrote nothing)"

    def log_problems(self) -> tuple[dict[str, int], list[str]]:
        """Counts of WARNING / ERROR / CRITICAL / Traceback lines in the server's output."""
        counts = dict.fromkeys(("warning", "error", "critical", "traceback"), 0)
        examples: list[str] = []
        for path in (self.stderr_path, self.stdout_path):
            with contextlib.suppress(OSError), path.open(errors="replace") as lines:
                for line in lines:
                    found = [
                        name
                        for name in counts
                        if (f" {name.upper()} " in line)
                        or (name == "traceback" and line.startswith("Traceback"))
                    ]
                    for name in found:
                        counts[name] += 1
                    if found and len(examples) < 10:
                        examples.append(line.rstrip()[:300])
        return counts, examples

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; idempotent."""
        proc = self.proc
        if proc is None or self.exit_code is not None:
            return
        t0 = time.perf_counter()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(
                    f"[bench] {self.name} server {self.index} ignored SIGTERM for 10 s; killing it",
                    file=sys.stderr,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.shutdown_s = time.perf_counter() - t0
        # Anything the server left behind in its own session (it was started as a new one).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.exit_code = proc.returncode

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RawServer(ServerProcess):
    """raw_ws.py under uvicorn: uvloop, httptools, websockets sans-I/O, no compression."""

    name = "raw-uvicorn"

    def server_command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "raw_ws:app", "--app-dir", str(BENCH_DIR)),
            *("--host", HOST, "--port", str(self.port)),
            *("--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio"),
            *("--ws-per-message-deflate", "false", "--lifespan", "on"),
            *("--no-access-log", "--log-level", "warning"),
        ]

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def tree_rss(proc: psutil.Process) -> int:
    """RSS of the server and any children it spawned."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def loop_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of the process's main thread (a server's event loop; its
    other threads are SQLite's, the thread pool's)."""
    with contextlib.suppress(psutil.Error):
        for thread in proc.threads():
            if thread.id == proc.pid:
                return float(thread.user_time + thread.system_time)
    return 0.0


def tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of the server and its live children."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
    return total
