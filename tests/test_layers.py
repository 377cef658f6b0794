"""The architecture, as a test: Netra's packages form layers, and every import goes down.

A *unit* is a package directly under ``netra`` (``netra.engine``, ``netra.db``) or a
top-level module (``netra.settings``); ``netra`` itself is its ``__init__`` (the version).
Every unit sits in exactly one layer of ``LAYERS`` below, lowest first, and may import only
units of lower layers: never one of its own layer (the units of a layer are peers that do
not know each other) and never one above. The imports read are all of them, found with
``ast`` in every module under ``src/netra``: at module level, inside functions (the lazy
imports of the command line) and under ``if TYPE_CHECKING:``. A ``TYPE_CHECKING`` import
never runs, so it cannot close an import cycle at run time and the cycle check leaves it
out; it names a dependency all the same, so it must go down like any other. Imports built
from strings at run time (``importlib``) are not read; Netra has none.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "netra"

LAYERS: tuple[tuple[str, ...], ...] = (
    # Leaves: they import nothing of Netra. The client too: it speaks the wire protocol
    # with httpx and websockets, and knows nothing of the server.
    (
        "netra",
        "netra.errors",
        "netra.ids",
        "netra.json_text",
        "netra.text",
        "netra.metrics",
        "netra.process",
        "netra.client",
    ),
    # Foundations on the error tree alone.
    ("netra.env", "netra.circuit", "netra.registry", "netra.model_ids", "netra.extension"),
    # The typed settings tree; ServiceRegistry (health, circuit breakers).
    ("netra.settings", "netra.services"),
    # Over the settings: the layered configuration, crash points, uvicorn options and
    # logging; and the per-request identity, on ids alone.
    ("netra.config", "netra.faults", "netra.server", "netra.context"),
    # Storage: tables, repositories, the queue, the ledger, the event log's writes.
    ("netra.db",),
    # Peers that do not know each other: models and providers, accounts and sessions, the
    # event log writer, bridge and bus.
    ("netra.models", "netra.auth", "netra.events"),
    ("netra.tools",),
    ("netra.agents",),
    ("netra.engine",),
    # Admission, cancellation, approvals: what a client asks of the engine.
    ("netra.runs",),
    # Live sockets and the /ws endpoint.
    ("netra.realtime",),
    # The application object: every process-wide object of a server or worker, wired.
    ("netra.instance",),
    # The HTTP routes over the application object.
    ("netra.api",),
    # The ASGI application: routes, endpoint and middleware over one instance.
    ("netra.app",),
    ("netra.cli",),
    ("netra.__main__",),
)
"""Netra's layers, lowest first: the one place the allowed import order is written."""

LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's dependency of one unit on another."""

    module: str
    """The importing module (``netra.engine.children``)."""
    line: int
    target: str
    """What it imports, as written (``netra.runs.quotas``)."""
    type_only: bool
    """Under ``if TYPE_CHECKING:``: for the type checker only, never run."""

    @property
    def source_unit(self) -> str:
        return unit_of(self.module)

    @property
    def target_unit(self) -> str:
        return unit_of(self.target)

    def __str__(self) -> str:
        where = " (under TYPE_CHECKING)" if self.type_only else ""
        return f"{self.module}:{self.line} imports {self.target}{where}"


@cache
def units() -> frozenset[str]:
    """Every unit in the source tree: ``netra``, its subpackages and its top-level modules."""
    found = {"netra"}
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            found.add(f"netra.{path.name}")
        elif path.suffix == ".py" and path.name != "__init__.py":
            found.add(f"netra.{path.stem}")
    return frozenset(found)


def unit_of(dotted: str) -> str:
    """``netra.db.tables`` → ``netra.db``; a name that is not a unit (``netra.__version__``)
    belongs to ``netra`` itself."""
    parts = dotted.split(".")
    unit = ".".join(parts[:2])
    return unit if unit in units() else "netra"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[Import] = []
        self._type_only = False

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        outer, self._type_only = self._type_only, True
        for child in node.body:
            self.visit(child)
        self._type_only = outer
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        for alias in node.names:
            # ``from netra import api`` names the unit ``netra.api``; ``from netra.api import
            # deps`` stays in ``netra.api`` whatever ``deps`` is.
            self._add(node, f"{base}.{alias.name}" if base == "netra" else base)

    def _add(self, node: ast.stmt, target: str) -> None:
        if target == "netra" or target.startswith("netra."):
            self.found.append(Import(self.module, node.lineno, target, self._type_only))


def imports() -> Iterator[Import]:
    """Every import of Netra by Netra, across units, once per statement and target."""
    for path in sorted(PACKAGE.rglob("*.py")):
        visitor = _Imports(_module_name(path), path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for found in dict.fromkeys(visitor.found):
            if found.source_unit != found.target_unit:
                yield found


def test_every_unit_has_one_place_in_the_layers() -> None:
    listed = [unit for layer in LAYERS for unit in layer]
    assert sorted(u for u in set(listed) if listed.count(u) > 1) == [], "listed twice"
    assert sorted(units() - set(listed)) == [], "units missing from LAYERS: place them"
    assert sorted(set(listed) - units()) == [], "LAYERS names units that do not exist"


def test_no_import_cycle_between_units() -> None:
    edges = [edge for edge in imports() if not edge.type_only]
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source_unit, set()).add(edge.target_unit)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        # Each unit of the cycle graphlib reports is imported by the next one: reversed, it
        # reads in the direction of the imports.
        cycle: list[str] = list(reversed(exc.args[1]))
    else:
        return
    lines = [" → ".join(cycle)]
    for source, target in pairwise(cycle):
        hop = [edge for edge in edges if (edge.source_unit, edge.target_unit) == (source, target)]
        more = f" (and {len(hop) - 1} more)" if len(hop) > 1 else ""
        lines.append(f"    {hop[0]}{more}")
    pytest.fail("an import cycle between units:\n" + "\n".join(lines), pytrace=False)


def test_every_import_goes_down_the_layers() -> None:
    wrong = [
        f"{edge}: {edge.source_unit} (layer {LAYER_OF[edge.source_unit]}) may not import "
        f"{edge.target_unit} (layer {LAYER_OF[edge.target_unit]})"
        for edge in imports()
        if edge.source_unit in LAYER_OF
        and edge.target_unit in LAYER_OF
        and LAYER_OF[edge.target_unit] >= LAYER_OF[edge.source_unit]
    ]
    if wrong:
        pytest.fail(
            "imports that do not go down the layers (a unit imports only from layers below "
            "its own; LAYERS in tests/test_layers.py, lowest first):\n" + "\n".join(wrong),
            pytrace=False,
        )


def test_the_client_loads_nothing_of_the_server() -> None:
    """``import netra.client`` in a fresh interpreter: no server module of Netra's, and none
    of the server's libraries, is loaded — httpx and websockets are all the client needs."""
    probe = (
        "import sys, netra.client\n"
        "server = ('fastapi', 'starlette', 'sqlalchemy', 'uvicorn', 'pydantic', 'redis')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in server\n"
        "    or (m.startswith('netra.') and not m.startswith('netra.client'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
