"""Netra: a self-hostable backend for multi-user AI agent chat."""

from __future__ import annotations

__version__ = "0.1.0"
