"""Where the migration scripts live and which one is the newest, read without Alembic."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
"""Alembic's script location."""


def head_revision() -> str:
    """The newest migration's revision, from the file names alone: ``0005_turns.py`` holds
    revision ``0005`` and revises the file before it (tests/db/test_manager.py holds the
    scripts to that), so a database at head is recognised without loading Alembic."""
    scripts = (MIGRATIONS / "versions").glob("[0-9]*_*.py")
    return max(script.name.partition("_")[0] for script in scripts)
