"""Model ids, provider settings and prices: what configuring a model looks like."""

from __future__ import annotations

from pathlib import Path

import pytest

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.errors import ConfigurationError, UnknownModel
from netra.model_ids import ModelId
from netra.models.base import ChatMessage, ModelRequest, TextDelta, Usage
from netra.models.catalog import ModelCatalog, ModelRegistry, provider_service
from netra.models.offline import OfflineModel
from netra.models.prices import ModelPrice, PriceTable
from netra.models.provider import Provider
from netra.services import ServiceRegistry

KEY = "sk-test-not-a-real-key-1234"


def _catalog(config: UnifiedConfigurationManager) -> tuple[ModelCatalog, ServiceRegistry[Provider]]:
    builtins = ModelRegistry("model")
    builtins.register("offline", OfflineModel())
    services: ServiceRegistry[Provider] = ServiceRegistry()
    return ModelCatalog(config, builtins=builtins, services=services), services


def test_an_api_key_in_the_environment_is_all_a_builtin_provider_needs() -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_MODELS__PROVIDERS__ANTHROPIC__API_KEY": KEY,
            "NETRA_MODELS__DEFAULT": "anthropic:claude-sonnet-4-5",
            "NETRA_MODELS__FALLBACKS": '["ollama:llama3.1"]',
            "NETRA_MODELS__PROVIDERS__VLLM__BASE_URL": "http://127.0.0.1:8001/v1",
        }
    )
    config = UnifiedConfigurationManager(env)
    models = config.settings.models
    assert models.default == "anthropic:claude-sonnet-4-5"
    assert models.fallbacks == ["ollama:llama3.1"]
    anthropic = models.providers["anthropic"]
    assert anthropic.kind == "anthropic" and anthropic.base_url is None
    assert anthropic.api_key is not None and anthropic.api_key.get_secret_value() == KEY
    assert models.providers["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert models.providers["vllm"].kind == "openai"
    shown = {path: value for path, value, _ in config.describe()}
    assert KEY not in "".join(shown.values())
    assert shown["models.providers.anthropic.api_key"].startswith("sk****")
    assert config.source("models.providers.anthropic.api_key") == "environment"


def test_providers_in_a_toml_file_extend_the_builtin_ones(tmp_path: Path) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text(
        '[models]\ndefault = "openrouter:openai/gpt-4o-mini"\n'
        '[models.providers.openrouter]\nbase_url = "https://openrouter.ai/api/v1"\n'
        f'api_key = "{KEY}"\ntimeout_s = 20\n'
        '[[models.prices]]\nmodel = "openrouter:openai/gpt-4o-mini"\n'
        "input_per_mtok = 0.2\noutput_per_mtok = 0.7\n"
    )
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated(), config_file=toml)
    catalog, services = _catalog(config)
    assert catalog.providers == ["anthropic", "ollama", "openai", "openrouter"]
    # Built at start: the provider the default names; the others when an id first names one.
    assert services.instances(provider_service("openrouter"))[0].endpoint == (
        "https://openrouter.ai/api/v1"
    )
    assert list(services.health()) == [provider_service("openrouter")]
    with pytest.raises(ConfigurationError, match="needs an API key"):
        catalog.resolve("openai:gpt-4o-mini")
    assert services.instances(provider_service("openai"))[0].endpoint == (
        "https://api.openai.com/v1"
    )
    prices = catalog.prices()
    assert prices.lookup(ModelId.parse("openrouter:openai/gpt-4o-mini")) == ModelPrice(0.2, 0.7)
    assert prices.lookup(ModelId.parse("openai:gpt-4o-mini")) == ModelPrice(0.15, 0.6, 0.075)


@pytest.mark.parametrize(
    ("model_id", "suggestion"),
    [("opnai:gpt-4o-mini", "did you mean 'openai'?"), ("olama:llama3.1", "did you mean 'ollama'?")],
)
def test_an_unknown_provider_in_the_settings_is_refused_with_a_suggestion(
    model_id: str, suggestion: str
) -> None:
    env = IsolatedEnvironment.isolated({"NETRA_MODELS__DEFAULT": model_id})
    with pytest.raises(ConfigurationError) as caught:
        UnifiedConfigurationManager(env)
    assert "models.default" in caught.value.message
    assert suggestion in caught.value.message

    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated())
    with pytest.raises(ConfigurationError, match="fallbacks"):
        config.set("models.fallbacks", ["openai:gpt-4o", model_id])
    assert config.settings.models.fallbacks == []


def test_provider_names_must_be_lowercase_words() -> None:
    env = IsolatedEnvironment.isolated()
    with pytest.raises(ConfigurationError, match="provider names"):
        UnifiedConfigurationManager(
            env, overrides={"models": {"providers": {"My Server": {"timeout_s": 5}}}}
        )


async def test_resolving_unknown_ids_says_what_was_meant() -> None:
    catalog, _ = _catalog(UnifiedConfigurationManager(IsolatedEnvironment.isolated()))
    with pytest.raises(UnknownModel, match=r"unknown model 'ofline' \(did you mean 'offline'\?\)"):
        catalog.resolve("ofline")
    with pytest.raises(UnknownModel, match=r"'antropic' .*did you mean 'anthropic'\?"):
        catalog.resolve("antropic:claude-sonnet-4-5")
    with pytest.raises(UnknownModel, match="must read 'provider:model'"):
        catalog.resolve("openai:")
    with pytest.raises(ConfigurationError, match="needs an API key"):
        catalog.resolve("openai:gpt-4o-mini")
    assert catalog.resolve("offline").service is None
    local = catalog.resolve("ollama:llama3.1:8b")  # local servers need no key
    assert local.model.id == "ollama:llama3.1:8b"
    assert local.service == provider_service("ollama")
    await catalog.aclose()


def test_config_check_lists_models_whose_provider_has_no_key() -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_MODELS__DEFAULT": "openai:gpt-4o-mini",
            "NETRA_MODELS__FALLBACKS": '["anthropic:claude-haiku-4-5", "ollama:llama3.1"]',
            "NETRA_MODELS__PROVIDERS__ANTHROPIC__API_KEY": KEY,
        }
    )
    config = UnifiedConfigurationManager(env)
    assert config.problems() == [
        "models.providers.openai.api_key must be set to use openai:gpt-4o-mini"
    ]
    with pytest.raises(ConfigurationError, match=r"openai\.api_key"):
        config.check()


@pytest.mark.parametrize(
    ("model_id", "price"),
    [
        ("openai:gpt-4o-mini", ModelPrice(0.15, 0.60, 0.075)),
        ("openai:gpt-4o-mini-2024-07-18", ModelPrice(0.15, 0.60, 0.075)),
        ("openai:gpt-4o", ModelPrice(2.50, 10.00, 1.25)),
        ("azure:gpt-4.1-nano", ModelPrice(0.10, 0.40, 0.025)),
        ("openrouter:anthropic/claude-sonnet-4-5", ModelPrice(3.00, 15.00, 0.30)),
        ("anthropic:claude-haiku-4-5-20251001", ModelPrice(1.00, 5.00, 0.10)),
        ("anthropic:claude-opus-4-5-20251101", ModelPrice(5.00, 25.00, 0.50)),
        ("anthropic:claude-opus-4-0", ModelPrice(15.00, 75.00, 1.50)),
        ("openai:chatgpt-4o-latest", None),
        ("openai:gpt-4.1-2025-04-14", ModelPrice(2.00, 8.00, 0.50)),
        ("anthropic:claude-3-5-haiku-latest", ModelPrice(0.80, 4.00, 0.08)),
        ("ollama:llama3.1:8b", None),
        ("openai:gpt-4oo", None),
        ("openai:gpt-4o-audio-preview", None),
        ("openai:gpt-5.1-codex-mini", None),
    ],
)
def test_the_shipped_price_table_prices_snapshots_and_aliases_as_their_base_name(
    model_id: str, price: ModelPrice | None
) -> None:
    assert PriceTable.shipped().lookup(ModelId.parse(model_id)) == price


def test_prices_are_dated_and_cost_is_per_million_tokens() -> None:
    table = PriceTable.shipped()
    assert table.as_of[:4].isdigit()
    price = table.lookup(ModelId.parse("openai:gpt-4o"))
    assert price is not None and price.cost(1_000_000, 100_000) == 3.5
    cheaper = table.with_overrides([("gpt-4o", ModelPrice(1.0, 2.0))])
    assert cheaper.lookup(ModelId.parse("openai:gpt-4o-2024-08-06")) == ModelPrice(1.0, 2.0)
    assert table.lookup(ModelId.parse("openai:gpt-4o")) == price  # the original is unchanged


async def test_a_builtin_model_is_priced_when_the_table_has_it() -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_MODELS__PRICES": '[{"model": "offline", "input_per_mtok": 2.0,'
            ' "output_per_mtok": 10.0}]'
        }
    )
    catalog, _ = _catalog(UnifiedConfigurationManager(env))
    request = ModelRequest([ChatMessage("user", "hello there")])
    parts = [part async for part in catalog.resolve("offline").model.stream(request)]
    usage = parts[-1]
    assert isinstance(usage, Usage) and usage.input_tokens > 0 and usage.output_tokens > 0
    expected = (usage.input_tokens * 2.0 + usage.output_tokens * 10.0) / 1_000_000
    assert usage.cost_usd == pytest.approx(expected)
    assert [p for p in parts if isinstance(p, TextDelta)], "the answer streams as before"

    unpriced, _ = _catalog(UnifiedConfigurationManager(IsolatedEnvironment.isolated()))
    assert isinstance(unpriced.resolve("offline").model, OfflineModel), "no price, no wrapper"
