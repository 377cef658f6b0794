"""Roles and the permissions they grant."""

from __future__ import annotations

from collections.abc import Iterable

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "user": frozenset({"chat", "tools.basic"}),
    "admin": frozenset({"chat", "tools.basic", "tools.admin", "admin"}),
}


def permissions_for(roles: Iterable[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)
