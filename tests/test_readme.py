"""The README documents every setting, and nothing that is not a setting."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from netra.settings import Settings

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
