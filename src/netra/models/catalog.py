"""ModelCatalog: turns model ids into models.

A built-in model (``offline``, ``scripted``, or any model registered in code) is found by
its name in the model registry, and priced like any other when the price table has it
(``[[models.prices]]`` with ``model = "offline"``): a deployment without an API key can show
and enforce spend end to end. ``provider:model`` goes through the provider of that name,
configured under ``models.providers``: each is built once, one ``Provider`` (one SDK client)
per base URL, each registered as an endpoint of the service ``model-provider:<name>`` in the
``ServiceRegistry``, where its health, its calls in flight and its circuit breaker live. A run
gets a ``FailoverModel`` over its model and its fallbacks, which picks the endpoint of each
call there.

While the catalog runs (``start`` to ``aclose``), every endpoint of a provider with a
``probe_interval_s`` is probed that often by a task the catalog owns: a failing probe takes the
endpoint out of the choice, a passing one brings it back and ends an open circuit's cool-down.

A provider is built when a model id first names it: at start-up for ``models.default`` and
``models.fallbacks``, later for an id that arrives with a reload or an agent. Its module, and
with it the SDK it speaks (``openai``, ``anthropic``), is imported then and not before, so a
server on the offline model never loads either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence

from netra.config import UnifiedConfigurationManager
from netra.errors import UnknownModel, did_you_mean
from netra.model_ids import ModelId
from netra.models.base import Model, ModelRequest, StreamPart, Usage
from netra.models.failover import Candidate, FailoverModel, Meter, Notify
from netra.models.prices import ModelPrice, PriceTable
from netra.models.provider import Provider, priced
from netra.registry import UniversalRegistry
from netra.services import InstanceMetrics, ServiceRegistry
from netra.settings.models import ProviderSettings

ModelRegistry = UniversalRegistry[Model]
"""Built-in models by name."""


def provider_service(name: str) -> str:
    """The ``ServiceRegistry`` service a provider's endpoint is registered under."""
    return f"model-provider:{name}"


def build_providers(name: str, settings: ProviderSettings) -> list[Provider]:
    """The endpoints of one ``models.providers`` entry, one per base URL (the kind's public
    API when it lists none); the only place a provider module (and its SDK) is imported."""
    if settings.kind == "anthropic":
        from netra.models.anthropic import ANTHROPIC_URL, AnthropicProvider

        return [AnthropicProvider(name, settings, url) for url in settings.urls or [ANTHROPIC_URL]]
    from netra.models.openai_compat import OPENAI_URL, OpenAICompatibleProvider

    return [OpenAICompatibleProvider(name, settings, url) for url in settings.urls or [OPENAI_URL]]


async def probe(provider: Provider) -> bool:
    """The health check of a provider endpoint in the ``ServiceRegistry``."""
    return await provider.probe()


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
        self._providers: dict[str, list[Provider]] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._running = False
        models = config.settings.models
        for name in _provider_names([models.default, *models.fallbacks]):
            self._provider(name)

    @property
    def providers(self) -> list[str]:
        """Every configured provider, built or not."""
        return sorted(self._settings)

    def _provider(self, name: str) -> list[Provider]:
        endpoints = self._providers.get(name)
        if endpoints is None:
            settings = self._settings[name]
            endpoints = build_providers(name, settings)
            for endpoint in endpoints:
                self._services.add(
                    provider_service(name),
                    endpoint.endpoint,
                    endpoint,
                    health_check=probe,
                    tags=(settings.kind,),
                )
            self._providers[name] = endpoints
            if self._running:
                self._watch(name)
        return endpoints

    def start(self) -> None:
        """Starts probing the endpoints of the providers built so far, and of those built
        from now on, each provider every ``probe_interval_s``."""
        self._running = True
        for name in self._providers:
            self._watch(name)

    def _watch(self, name: str) -> None:
        every_s = self._settings[name].probe_interval_s
        if every_s > 0:
            self._probes[name] = asyncio.create_task(
                self._services.watch(provider_service(name), every_s),
                name=f"probe-{name}",
            )

    def endpoints(self) -> dict[str, dict[str, InstanceMetrics]]:
        """The state of every endpoint of the providers built so far: by provider name, then
        base URL."""
        return {
            name: self._services.metrics(provider_service(name)) for name in sorted(self._providers)
        }

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
        on = {
            endpoint.endpoint: endpoint.model(parsed.name, prices)
            for endpoint in self._provider(parsed.provider)
        }
        return Candidate(
            next(iter(on.values())),
            service=provider_service(parsed.provider),
            on=on,
            price=price,
            prices_as_of=prices.as_of,
        )

    def for_run(
        self, model_ids: Sequence[str], *, notify: Notify, meter: Meter | None = None
    ) -> FailoverModel:
        """The model of a run: its own model first, then its fallbacks, each id once; each
        call's usage goes to ``meter``."""
        candidates = [self.resolve(model_id) for model_id in dict.fromkeys(model_ids)]
        return FailoverModel(candidates, services=self._services, notify=notify, meter=meter)

    async def aclose(self) -> None:
        """Stops the probes, then closes every endpoint's connections."""
        self._running = False
        for task in self._probes.values():
            task.cancel()
        for task in self._probes.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._probes.clear()
        for endpoints in self._providers.values():
            for endpoint in endpoints:
                await endpoint.aclose()


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
