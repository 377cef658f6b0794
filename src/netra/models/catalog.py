"""ModelCatalog: turns model ids into models.

A built-in model (``offline``, ``scripted``, or any model registered in code) is found by
its name in the model registry, and priced like any other when the price table has it
(``[[models.prices]]`` with ``model = "offline"``): a deployment without an API key can show
and enforce spend end to end. ``provider:model`` goes through the provider of that name,
configured under ``models.providers``: each is built once and registered as an endpoint of
the service ``model-provider:<name>`` in the ``ServiceRegistry``, where its circuit breaker
lives. A run gets a ``FailoverModel`` over its model and its fallbacks.

A provider is built when a model id first names it: at start-up for ``models.default`` and
``models.fallbacks``, later for an id that arrives with a reload or an agent. Its module, and
with it the SDK it speaks (``openai``, ``anthropic``), is imported then and not before, so a
server on the offline model never loads either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from netra.config import UnifiedConfigurationManager
from netra.errors import UnknownModel, did_you_mean
from netra.model_ids import ModelId
from netra.models.base import Model, ModelRequest, StreamPart, Usage
from netra.models.failover import Candidate, FailoverModel, Meter, Notify
from netra.models.prices import ModelPrice, PriceTable
from netra.models.provider import Provider, priced
from netra.registry import UniversalRegistry
from netra.services import ServiceRegistry
from netra.settings import ProviderSettings

ModelRegistry = UniversalRegistry[Model]
"""Built-in models by name."""


def provider_service(name: str) -> str:
    """The ``ServiceRegistry`` service a provider's endpoint is registered under."""
    return f"model-provider:{name}"


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    """The provider of one ``models.providers`` entry; the only place a provider module (and
    its SDK) is imported."""
    if settings.kind == "anthropic":
        from netra.models.anthropic import AnthropicProvider

        return AnthropicProvider(name, settings)
    from netra.models.openai_compat import OpenAICompatibleProvider

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
        # Read once: providers take effect at a restart, like every setting a reload skips.
        self._settings = dict(config.settings.models.providers)
        self._providers: dict[str, Provider] = {}
        models = config.settings.models
        for name in _provider_names([models.default, *models.fallbacks]):
            self._provider(name)

    @property
    def providers(self) -> list[str]:
        """Every configured provider, built or not."""
        return sorted(self._settings)

    def _provider(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            settings = self._settings[name]
            provider = build_provider(name, settings)
            self._services.add(
                provider_service(name), provider.endpoint, provider, tags=(settings.kind,)
            )
            self._providers[name] = provider
        return provider

    def prices(self) -> PriceTable:
        """The shipped table under the overrides currently configured (``models.prices``,
        ``models.context_windows``)."""
        models = self._config.settings.models
        return self._shipped_prices.with_overrides(
            (
                (
                    entry.model,
                    ModelPrice(
                        entry.input_per_mtok, entry.output_per_mtok, entry.cached_input_per_mtok
                    ),
                )
                for entry in models.prices
            ),
            {entry.model: entry.tokens for entry in models.context_windows},
        )

    def context_window(self, model_ids: Sequence[str]) -> int:
        """The smallest context window of these models (a run's model and its fallbacks: its
        prompt must fit whichever answers)."""
        table, default = self.prices(), self._config.settings.models.default_context_window
        return min(
            (table.window(ModelId.parse(model_id)) or default for model_id in model_ids),
            default=default,
        )

    def resolve(self, model_id: str) -> Candidate:
        """The model an id names; ``UnknownModel`` (with a suggestion) when none."""
        parsed = ModelId.parse(model_id)
        prices = self.prices()
        price = prices.lookup(parsed)
        if parsed.provider is None:
            if self._builtins.has(parsed.name):
                builtin = self._builtins.get(parsed.name)
                return Candidate(
                    builtin if price is None else PricedModel(builtin, price),
                    price=price,
                    prices_as_of=prices.as_of,
                )
            known = [*self._builtins.keys(), *(f"{p}:…" for p in self._settings)]
            raise UnknownModel(
                f"unknown model {model_id!r}{did_you_mean(parsed.name, self._builtins.keys())}; "
                f"model ids are a built-in name or 'provider:model' (known: {', '.join(known)})"
            )
        parsed.check_provider(self._settings)
        provider = self._provider(parsed.provider)
        model = provider.model(parsed.name, prices)
        return Candidate(
            model, provider_service(provider.name), provider.endpoint, price, prices.as_of
        )

    def for_run(
        self, model_ids: Sequence[str], *, notify: Notify, meter: Meter | None = None
    ) -> FailoverModel:
        """The model of a run: its own model first, then its fallbacks, each id once; each
        call's usage goes to ``meter``."""
        candidates = [self.resolve(model_id) for model_id in dict.fromkeys(model_ids)]
        return FailoverModel(candidates, services=self._services, notify=notify, meter=meter)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


def _provider_names(model_ids: Iterable[str]) -> list[str]:
    """The providers the ids name, in order, each once (built-in names name none)."""
    names = (ModelId.parse(model_id).provider for model_id in model_ids)
    return list(dict.fromkeys(name for name in names if name is not None))


class PricedModel:
    """A built-in model under a price of the table: each usage it reports gets the cost its
    tokens come to (built-in models count tokens, not dollars)."""

    def __init__(self, model: Model, price: ModelPrice) -> None:
        self._model = model
        self._price = price

    @property
    def id(self) -> str:
        return self._model.id

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        async for part in self._model.stream(request):
            if isinstance(part, Usage):
                yield priced(
                    self._price, part.input_tokens, part.output_tokens, part.cached_input_tokens
                )
            else:
                yield part
