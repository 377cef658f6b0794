"""The test MCP server (tests/tools/mcp_server.py) over streamable HTTP, in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests.redis_process import free_port

SERVER_SCRIPT = Path(__file__).with_name("mcp_server.py")


class HttpMcpServer:
    """The test MCP server on 127.0.0.1:<free port>/mcp, requiring a bearer header (the
    session's canary, so it must never show up anywhere else). ``env`` is added to its
    environment (``MCP_RECORD_FILE`` for the ``record`` tool)."""

    def __init__(self, token: str, *, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "http", str(self.port)],
            env={**os.environ, **self._env, "MCP_TEST_TOKEN": self.token},
        )
        for _ in range(400):
            if self._process.poll() is not None:
                raise RuntimeError("the MCP test server exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        raise RuntimeError("the MCP test server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()  # a crash, as far as Netra can tell
            self._process.wait(timeout=30)
            self._process = None
