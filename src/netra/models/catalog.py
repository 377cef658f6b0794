"""ModelCatalog: turns model ids into models.

A built-in model (``offline``, ``scripted``, or any model registered in code) is found by
its name in the model registry. ``provider:model`` goes through the provider of that name,
configured under ``models.providers``: each is built once, at start-up, and registered as an
endpoint of the service ``model-provider:<name>`` in the ``ServiceRegistry``, where its
circuit breaker lives. A run gets a ``FailoverModel`` over its model and its fallbacks.
"""

from __future__ import annotations

from collections.abc import Sequence

from netra.config import UnifiedConfigurationManager
from netra.errors import UnknownModel, did_you_mean
from netra.model_ids import ModelId
from netra.models.anthropic import AnthropicProvider
from netra.models.base import Model
from netra.models.failover import Candidate, FailoverModel, Notify
from netra.models.openai_compat import OpenAICompatibleProvider
from netra.models.prices import ModelPrice, PriceTable
from netra.models.provider import Provider
from netra.registry import UniversalRegistry
from netra.services import ServiceRegistry
from netra.settings import ProviderSettings

ModelRegistry = UniversalRegistry[Model]
"""Built-in models by name."""


def provider_service(name: str) -> str:
    """The ``ServiceRegistry`` service a provider's endpoint is registered under."""
    return f"model-provider:{name}"


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    if settings.kind == "anthropic":
        return AnthropicProvider(name, settings)
    return OpenAICompatibleProvider(name, settings)


class ModelCatalog:
    """Every model a run can name: built-in ones and those of the configured providers."""

    def __init__(
        self,
        config: UnifiedConfigurationManager,
        *,
        builtins: ModelRegistry,
        services: ServiceRegistry[Provider],
    ) -> None:
        self._config = config
        self._builtins = builtins
        self._services = services
        self._shipped_prices = PriceTable.shipped()
        self._providers: dict[str, Provider] = {}
        for name, settings in sorted(config.settings.models.providers.items()):
            provider = build_provider(name, settings)
            services.add(provider_service(name), provider.endpoint, provider, tags=(settings.kind,))
            self._providers[name] = provider

    @property
    def providers(self) -> list[str]:
        return sorted(self._providers)

    def prices(self) -> PriceTable:
        """The shipped table under the overrides currently configured (``models.prices``)."""
        overrides = self._config.settings.models.prices
        return self._shipped_prices.with_overrides(
            (entry.model, ModelPrice(entry.input_per_mtok, entry.output_per_mtok))
            for entry in overrides
        )

    def resolve(self, model_id: str) -> Candidate:
        """The model an id names; ``UnknownModel`` (with a suggestion) when none."""
        parsed = ModelId.parse(model_id)
        if parsed.provider is None:
            if self._builtins.has(parsed.name):
                return Candidate(self._builtins.get(parsed.name))
            known = [*self._builtins.keys(), *(f"{p}:…" for p in self._providers)]
            raise UnknownModel(
                f"unknown model {model_id!r}{did_you_mean(parsed.name, self._builtins.keys())}; "
                f"model ids are a built-in name or 'provider:model' (known: {', '.join(known)})"
            )
        parsed.check_provider(self._providers)
        provider = self._providers[parsed.provider]
        model = provider.model(parsed.name, self.prices())
        return Candidate(model, provider_service(provider.name), provider.endpoint)

    def for_run(self, model_ids: Sequence[str], *, notify: Notify) -> FailoverModel:
        """The model of a run: its own model first, then its fallbacks, each id once."""
        candidates = [self.resolve(model_id) for model_id in dict.fromkeys(model_ids)]
        return FailoverModel(candidates, services=self._services, notify=notify)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
