"""The peer of the side-by-side benchmark: the LangGraph dev server, in-memory runtime.

``langgraph-cli[inmem]`` is installed from PyPI into a virtual environment of its own,
``bench/.peer/venv`` (git-ignored), the first time a benchmark needs it: the peer's
dependencies never mix with Netra's. ``LangGraphServer`` runs ``langgraph dev`` on the graph
in ``bench/peer/`` (the same run as Netra's offline model: one calculator call, 8 custom
events) with ``--n-jobs-per-worker 10``, no reloader, analytics and LangSmith tracing off.
It tries to reach the internet all the same, so ``bench/compare.py`` runs it inside a
loopback-only network namespace (``netns.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from processes import HOST, ServerProcess, SetupError

BENCH_DIR = Path(__file__).resolve().parent
GRAPH_DIR = BENCH_DIR / "peer"
VENV = BENCH_DIR / ".peer" / "venv"
SPEC = "langgraph-cli[inmem]==0.4.40"
"""What is installed; the version the published numbers were measured with."""
JOBS_PER_WORKER = 10
PACKAGES = (
    "langgraph-cli",
    "langgraph-api",
    "langgraph-runtime-inmem",
    "langgraph",
    "langchain-core",
    "uvicorn",
)
"""Whose versions the report records."""
QUIET_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


def _marker(venv: Path) -> Path:
    return venv / ".installed"


def installed(spec: str = SPEC, venv: Path = VENV) -> bool:
    marker = _marker(venv)
    return marker.is_file() and marker.read_text().strip() == spec


def install(spec: str = SPEC, venv: Path = VENV) -> None:
    """Create the peer's venv and `pip install` the spec from the package registry, unless
    that spec is installed there already."""
    if installed(spec, venv):
        return
    print(f"[bench] installing {spec} into {venv} (first use; about a minute)", file=sys.stderr)
    for step in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", spec],
    ):
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SetupError(
                f"could not install {spec} into {venv}: {' '.join(step)} exited with status "
                f"{done.returncode}\n{(done.stdout + done.stderr)[-3000:]}"
            )
    _marker(venv).write_text(spec + "\n")


def versions(venv: Path = VENV) -> dict[str, str]:
    """Installed versions of the peer's main packages."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, *PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    found: dict[str, str] = json.loads(done.stdout)
    return found


class LangGraphServer(ServerProcess):
    """`langgraph dev` on a free port, pinned like Netra's server; its in-memory runtime
    persists into the throwaway working directory."""

    name = "langgraph"
    ready_path = "/ok"

    def server_command(self) -> list[str]:
        return [
            str(VENV / "bin" / "langgraph"),
            "dev",
            "--config",
            str(self._config()),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--no-browser",
            "--no-reload",
            "--n-jobs-per-worker",
            str(JOBS_PER_WORKER),
        ]

    def _config(self) -> Path:
        """bench/peer/langgraph.json with its paths made absolute: `langgraph dev` reads them
        from its working directory, the throwaway one where it persists its state."""
        config = json.loads((GRAPH_DIR / "langgraph.json").read_text())
        config["dependencies"] = [str(GRAPH_DIR / d) for d in config["dependencies"]]
        config["graphs"] = {
            graph_id: str(GRAPH_DIR / spec) for graph_id, spec in config["graphs"].items()
        }
        path = self.root / "langgraph.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(QUIET_ENV)
        return env
