"""The README documents every setting, and nothing that is not a setting."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from pydantic import BaseModel

from netra.settings import Settings
from tests.support import LiveServer, run_python

README = Path(__file__).resolve().parent.parent / "README.md"


def _variables(model: type[BaseModel], prefix: str = "NETRA_") -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _variables(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(NETRA_[A-Z0-9_]+)` \|", README.read_text(), re.M))
    expected = _variables(Settings)
    assert sorted(expected - documented) == [], "settings missing from README"
    assert sorted(documented - expected) == [], "README documents settings that do not exist"


def test_the_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text.split("## ")[0]
    assert "make test" in text.split("## ")[0]


def client_example() -> str:
    """The Python example of the README's *Clients* section, as written."""
    section = README.read_text().split("\n## Clients\n")[1].split("\n## ")[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the Clients section has no Python example"
    return found.group(1)


async def test_the_readme_client_example_runs_against_a_live_server(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        account = {"email": "ada@example.com", "password": "correct horse battery"}
        assert (await http.post("/auth/register", json=account)).status_code == 201
    done = await asyncio.to_thread(
        run_python, "-c", client_example(), env={"NETRA_URL": server.url}
    )
    assert done.returncode == 0, done.stderr
    assert "⚙ calculator {'expression': '12*7'}" in done.stdout
    assert "12*7 = 84" in done.stdout
    assert done.stdout.rstrip().endswith("[completed]")
