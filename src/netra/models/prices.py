"""What model calls cost, and how much each model reads: the table shipped in ``prices.toml``
(prices and context windows), plus settings overrides.

A price (or a context window) is found for a model id in this order: an entry for the exact id
(``openai:gpt-4o-mini``), then an entry for its model name, where a dated snapshot
(``-2024-07-18``, ``-20250929``), a revision number (``-0``) or a ``-latest`` alias counts as
the name it extends: ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``, but
``gpt-4o-audio-preview`` is not priced as ``gpt-4o``. A vendor prefix such as OpenRouter's
``openai/`` is ignored. A model with no price costs 0.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from netra.errors import ConfigurationError
from netra.model_ids import ModelId

V = TypeVar("V")
SHIPPED = "prices.toml"
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{1,2}|(?:chat-)?latest)$")
"""What a name may add to a priced name and keep its price: a date, a revision, -latest."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    """Input tokens the provider read from its prompt cache; None: priced as any input."""

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """The dollars of a call; ``input_tokens`` counts the cached ones too."""
        cached = min(cached_input_tokens, input_tokens)
        cached_price = self.cached_input_per_mtok
        if cached_price is None:
            cached_price = self.input_per_mtok
        dollars = (
            (input_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + output_tokens * self.output_per_mtok
        )
        return round(dollars / 1_000_000, 8)


class PriceTable:
    """Prices and context windows by model name or exact model id; immutable, overrides make
    a new table."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        *,
        as_of: str,
        providers: Mapping[str, str] | None = None,
        windows: Mapping[str, int] | None = None,
        without_tools: Iterable[str] = (),
    ) -> None:
        self._prices = dict(prices)
        self._windows = dict(windows or {})
        """Context window in tokens by model name or exact id."""
        self._tools = dict.fromkeys(without_tools, False)
        """Models that cannot call tools (``tools = false`` in the table); any other can."""
        self._providers = dict(providers or {})
        """Provider of each shipped model name (its section in the table)."""
        self.as_of = as_of
        """Date the shipped prices were taken from the providers' pricing pages."""

    @classmethod
    def shipped(cls) -> PriceTable:
        """The table in ``netra/models/prices.toml``."""
        text = resources.files("netra.models").joinpath(SHIPPED).read_text(encoding="utf-8")
        data = tomllib.loads(text)
        prices: dict[str, ModelPrice] = {}
        providers: dict[str, str] = {}
        windows: dict[str, int] = {}
        without_tools: list[str] = []
        for section, entries in data.items():
            if not isinstance(entries, dict):
                continue
            for name, entry in entries.items():
                prices[name] = _price(f"{section}.{name}", entry)
                providers[name] = section
                if "context_window" in entry:
                    windows[name] = int(entry["context_window"])
                if entry.get("tools") is False:
                    without_tools.append(name)
        return cls(
            prices,
            as_of=str(data.get("as_of", "")),
            providers=providers,
            windows=windows,
            without_tools=without_tools,
        )

    def with_overrides(
        self,
        overrides: Iterable[tuple[str, ModelPrice]],
        windows: Mapping[str, int] | None = None,
    ) -> PriceTable:
        """A copy where each ``(model name or id, price)`` and each ``windows`` entry
        replaces or adds one."""
        extra = dict(overrides)
        if not extra and not windows:
            return self
        return PriceTable(
            {**self._prices, **extra},
            as_of=self.as_of,
            providers=self._providers,
            windows={**self._windows, **(windows or {})},
            without_tools=self._tools,
        )

    def names(self) -> list[str]:
        """Every priced model name (not the exact-id entries): known names for suggestions."""
        return sorted(name for name in self._prices if ":" not in name)

    def offers(self) -> list[tuple[ModelId, ModelPrice]]:
        """Every model that can be recommended: priced, with a known provider."""
        return [
            (ModelId(self._providers[name], name), price)
            for name, price in sorted(self._prices.items())
            if name in self._providers
        ]

    def lookup(self, model_id: ModelId) -> ModelPrice | None:
        return _find(self._prices, model_id)

    def window(self, model_id: ModelId) -> int | None:
        """The model's context window in tokens; None when the table does not know it."""
        return _find(self._windows, model_id)

    def calls_tools(self, model_id: ModelId) -> bool:
        """Whether the model can call tools (all can but those the table says cannot)."""
        return _find(self._tools, model_id) is None


def _find(entries: Mapping[str, V], model_id: ModelId) -> V | None:
    exact = entries.get(str(model_id))
    if exact is not None:
        return exact
    name = model_id.name.rsplit("/", 1)[-1]
    while True:
        found = entries.get(name)
        if found is not None:
            return found
        base = _SNAPSHOT.sub("", name, count=1)
        if base == name:
            return None
        name = base


def _price(where: str, entry: Any) -> ModelPrice:
    try:
        cached = entry.get("cached")
        return ModelPrice(
            float(entry["input"]),
            float(entry["output"]),
            None if cached is None else float(cached),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{SHIPPED}: {where} needs numeric 'input' and 'output' prices (and 'cached', if any)"
        ) from exc
