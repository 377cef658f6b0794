"""UniversalRegistry[T]: named items and factories with tags, validators, freeze and metrics.

The agent, tool and model registries are built on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from netra.errors import Conflict, InvalidRequest, NetraError, NotFound

T = TypeVar("T")
Validator = Callable[[str, T], None]
"""Raises ``InvalidRequest`` (or any ``ValueError``) to refuse an item."""


class RegistryFrozen(NetraError):
    """Raised when a frozen registry is asked to change."""

    code = "registry_frozen"


@dataclass(slots=True)
class RegistryMetrics:
    registrations: int = 0
    lookups: int = 0
    misses: int = 0
    factory_creations: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T | None
    factory: Callable[..., T] | None
    tags: frozenset[str] = field(default_factory=frozenset)


class UniversalRegistry(Generic[T]):
    """A thread-safe registry of items of one kind, keyed by name."""

    def __init__(self, kind: str, *, allow_override: bool = False) -> None:
        self.kind = kind
        self._allow_override = allow_override
        self._entries: dict[str, _Entry[T]] = {}
        self._validators: list[Validator[T]] = []
        self._frozen = False
        self._lock = threading.RLock()
        self.metrics = RegistryMetrics()

    def add_validator(self, validator: Validator[T]) -> None:
        with self._lock:
            self._validators.append(validator)

    def register(
        self, key: str, item: T, *, tags: Iterable[str] = (), override: bool = False
    ) -> None:
        with self._lock:
            self._check_writable(key, override)
            for validator in self._validators:
                try:
                    validator(key, item)
                except (InvalidRequest, ValueError) as exc:
                    self.metrics.failures += 1
                    raise InvalidRequest(f"{self.kind} {key!r} rejected: {exc}") from exc
            self._entries[key] = _Entry(item, None, frozenset(tags))
            self.metrics.registrations += 1

    def register_factory(
        self,
        key: str,
        factory: Callable[..., T],
        *,
        tags: Iterable[str] = (),
        override: bool = False,
    ) -> None:
        with self._lock:
            self._check_writable(key, override)
            self._entries[key] = _Entry(None, factory, frozenset(tags))
            self.metrics.registrations += 1

    def _check_writable(self, key: str, override: bool) -> None:
        if self._frozen:
            raise RegistryFrozen(f"the {self.kind} registry is frozen")
        if not key or not isinstance(key, str):
            raise InvalidRequest(f"{self.kind} key must be a non-empty string")
        if key in self._entries and not (override or self._allow_override):
            self.metrics.failures += 1
            raise Conflict(f"{self.kind} {key!r} is already registered")

    def _entry(self, key: str) -> _Entry[T]:
        with self._lock:
            self.metrics.lookups += 1
            entry = self._entries.get(key)
            if entry is None:
                self.metrics.misses += 1
                known = ", ".join(sorted(self._entries)) or "none"
                raise NotFound(f"unknown {self.kind} {key!r} (known: {known})")
            return entry

    def get(self, key: str) -> T:
        """The registered item; for a factory entry, ``create`` builds a fresh one instead."""
        entry = self._entry(key)
        if entry.item is None:
            raise InvalidRequest(f"{self.kind} {key!r} is a factory; use create()")
        return entry.item

    def create(self, key: str, *args: object, **kwargs: object) -> T:
        """A fresh instance from the factory registered under ``key``."""
        entry = self._entry(key)
        if entry.factory is None:
            raise InvalidRequest(f"{self.kind} {key!r} has no factory; use get()")
        try:
            created = entry.factory(*args, **kwargs)
        except Exception:
            with self._lock:
                self.metrics.failures += 1
            raise
        with self._lock:
            self.metrics.factory_creations += 1
        return created

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def remove(self, key: str) -> None:
        with self._lock:
            if self._frozen:
                raise RegistryFrozen(f"the {self.kind} registry is frozen")
            if self._entries.pop(key, None) is None:
                raise NotFound(f"unknown {self.kind} {key!r}")

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """Every registered (non-factory) item, by key."""
        with self._lock:
            return [(k, e.item) for k, e in sorted(self._entries.items()) if e.item is not None]

    def tags_of(self, key: str) -> frozenset[str]:
        return self._entry(key).tags

    def list_by_tag(self, tag: str) -> list[str]:
        with self._lock:
            return sorted(key for key, entry in self._entries.items() if tag in entry.tags)

    def freeze(self) -> None:
        with self._lock:
            self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def health(self) -> dict[str, object]:
        with self._lock:
            lookups = max(self.metrics.lookups, 1)
            failure_rate = (self.metrics.failures + self.metrics.misses) / lookups
            status = "empty" if not self._entries else "healthy"
            if self._entries and failure_rate > 0.5 and self.metrics.lookups >= 10:
                status = "degraded"
            return {
                "kind": self.kind,
                "status": status,
                "items": len(self._entries),
                "frozen": self._frozen,
                "failure_rate": round(failure_rate, 4),
            }
