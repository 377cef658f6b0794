"""Settings of the models: providers (one endpoint or a pool), prices, context windows,
the default model and its fallbacks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from netra.errors import UnknownModel
from netra.model_ids import ModelId
from netra.settings.section import Section

PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
"""Provider names are lowercase: environment variable paths are lowercased on the way in."""


class ProviderSettings(Section):
    """One model provider: one endpoint or a pool of them serving the same models; model ids
    name it before the colon (`openai:gpt-4o`)."""

    kind: Literal["openai", "anthropic"] = "openai"
    """API the endpoints speak: `openai` (chat completions: OpenAI, Ollama, vLLM, llama.cpp
    server, LM Studio, OpenRouter…) or `anthropic` (messages)."""
    base_url: str | list[str] | None = None
    """Endpoint URL, or a list of them: a pool of replicas serving the same models, each call
    going to the one with the fewest calls in flight among those up (every endpoint shares
    the provider's other settings). Empty means the kind's public API."""
    api_key: SecretStr | None = None
    """API key; never logged or shown. A provider with a `base_url` may go without one."""
    timeout_s: float = Field(60.0, gt=0, le=3600)
    """Seconds to connect, and to wait for each part of a response, before the call fails."""
    max_retries: int = Field(1, ge=0, le=10)
    """Retries inside the provider's SDK (with its backoff) before the call counts as failed."""
    max_output_tokens: int | None = Field(None, ge=1)
    """Cap on the tokens of one answer; empty sends none (Anthropic requires one: 4096)."""
    probe_interval_s: float = Field(10.0, ge=0)
    """Seconds between health probes of each endpoint (`GET <url>/models`) while the server
    runs; 0: no probes."""

    @field_validator("base_url")
    @classmethod
    def _endpoint_urls(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("a pool needs at least one URL")
            for url in value:
                _check_url(url)
            repeated = [u for u, n in Counter(u.rstrip("/") for u in value).items() if n > 1]
            if repeated:
                raise ValueError(f"the pool lists {repeated[0]} more than once")
            return value
        if not value:
            return None
        _check_url(value)
        return value

    @property
    def urls(self) -> list[str]:
        """The base URLs of the provider's endpoints; empty: the kind's public API."""
        if isinstance(self.base_url, list):
            return list(self.base_url)
        return [] if self.base_url is None else [self.base_url]


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL must not carry credentials (user:password@): set api_key")


def builtin_providers() -> dict[str, ProviderSettings]:
    """The providers every installation knows: set an API key (or run Ollama) and go."""
    return {
        "openai": ProviderSettings(kind="openai"),
        "anthropic": ProviderSettings(kind="anthropic"),
        "ollama": ProviderSettings(
            kind="openai", base_url="http://127.0.0.1:11434/v1", timeout_s=120.0
        ),
    }


class ContextWindowSettings(Section):
    """A model's context window, overriding or extending the shipped table's."""

    model: str = Field(min_length=1)
    """A model name (`gpt-4o`, for every provider) or an exact id (`ollama:llama3.1`)."""
    tokens: int = Field(ge=256)
    """How many tokens the model reads and writes in one call."""


class PriceSettings(Section):
    """A model price that overrides or extends the shipped price table."""

    model: str = Field(min_length=1)
    """A model name (`gpt-4o`, for every provider) or an exact id (`openrouter:openai/gpt-4o`)."""
    input_per_mtok: float = Field(ge=0)
    """US dollars per million input tokens."""
    output_per_mtok: float = Field(ge=0)
    """US dollars per million output tokens."""
    cached_input_per_mtok: float | None = Field(None, ge=0)
    """US dollars per million input tokens read from the provider's prompt cache; unset:
    the input price."""


class ModelSettings(Section):
    providers: dict[str, ProviderSettings] = Field(default_factory=builtin_providers)
    """Model providers by name; entries named like a built-in one change only what they set."""
    default: str = "offline"
    """Model id used by agents that name none (`offline`, `scripted`, `provider:model`)."""
    fallbacks: list[str] = Field(default_factory=list)
    """Model ids tried in order when a run's model fails before it has streamed anything."""
    prices: list[PriceSettings] = Field(default_factory=list)
    """Prices overriding or extending the shipped table (`[[models.prices]]`)."""
    context_windows: list[ContextWindowSettings] = Field(default_factory=list)
    """Context windows overriding or extending the shipped table's
    (`[[models.context_windows]]`)."""
    default_context_window: int = Field(128_000, ge=1_000)
    """Context window of a model neither the table nor `context_windows` knows (`offline`,
    `scripted`, a local model)."""
    reserve_output_tokens: int = Field(4_096, ge=0)
    """Tokens of a model's window kept for its answer: a prompt fills at most the rest (and
    at most three quarters of the window)."""
    history_messages: int = Field(1_000, ge=2, le=100_000)
    """A thread's newest messages a run reads (of its branch, up to its question) before
    fitting them to the model's window: what lies before them is neither sent nor
    summarised. Bounds the read of a very long thread."""
    summarize: bool = True
    """Earlier turns that do not fit a model's window are summarised (a call of the run's
    model, metered to the run, stored for the thread's next runs); false: left out."""
    offline_chunk_delay_ms: int = Field(15, ge=0, le=5000)
    """Pause between streamed chunks of the offline model, so streaming is visible."""
    circuit_failure_threshold: int = Field(3, ge=1)
    """Consecutive failed calls after which a provider endpoint is skipped (circuit open)."""
    circuit_reset_s: float = Field(30.0, gt=0)
    """Seconds a provider with an open circuit is skipped before one trial call."""

    @field_validator("providers", mode="before")
    @classmethod
    def _over_builtins(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        merged: dict[str, Any] = {
            name: entry.model_dump(exclude_unset=True)
            for name, entry in builtin_providers().items()
        }
        for name, entry in value.items():
            given = entry.model_dump(exclude_unset=True) if isinstance(entry, Section) else entry
            builtin = merged.get(name)
            if builtin is not None and isinstance(given, Mapping):
                given = {**builtin, **given}
            merged[name] = given
        return merged

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        bad = [name for name in value if not PROVIDER_NAME.match(name)]
        if bad:
            raise ValueError(f"provider names must match {PROVIDER_NAME.pattern}: {bad}")
        return value

    @field_validator("default")
    @classmethod
    def _default_provider(cls, value: str, info: ValidationInfo) -> str:
        _check_model_id(value, info)
        return value

    @field_validator("fallbacks")
    @classmethod
    def _fallback_providers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for model_id in value:
            _check_model_id(model_id, info)
        return value


def _check_model_id(model_id: str, info: ValidationInfo) -> None:
    providers = info.data.get("providers")
    if providers is None:  # providers failed validation; that error is reported
        return
    try:
        ModelId.parse(model_id).check_provider(providers)
    except UnknownModel as exc:
        raise ValueError(exc.message) from None
