"""Model ids: ``provider:model`` (``openai:gpt-4o-mini``, ``ollama:llama3.1:8b``), or the name
of a built-in model (``offline``, ``scripted``).

A leaf on the error tree alone, outside ``netra.models``: the settings check the model ids
they are given, and the models package reads the settings, so the id cannot live with the
models without the two importing each other."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from netra.errors import UnknownModel, did_you_mean


@dataclass(frozen=True, slots=True)
class ModelId:
    """A parsed model id."""

    provider: str | None
    """Name of a configured provider; None for a built-in model."""
    name: str
    """The model's name at its provider; everything after the first ``:``, so it may hold
    more colons (Ollama tags) or slashes (OpenRouter)."""

    @classmethod
    def parse(cls, text: str) -> ModelId:
        provider, colon, name = text.strip().partition(":")
        if not colon:
            if not provider:
                raise UnknownModel("a model id must not be empty")
            return cls(None, provider)
        if not provider or not name:
            raise UnknownModel(f"model id {text!r} must read 'provider:model'")
        return cls(provider, name)

    def check_provider(self, providers: Collection[str]) -> None:
        """Raises ``UnknownModel``, with a suggestion, when the provider is not configured."""
        if self.provider is None or self.provider in providers:
            return
        known = ", ".join(sorted(providers)) or "none"
        raise UnknownModel(
            f"unknown model provider {self.provider!r} in {str(self)!r}"
            f"{did_you_mean(self.provider, providers)}; configured providers: {known}"
        )

    def __str__(self) -> str:
        return self.name if self.provider is None else f"{self.provider}:{self.name}"
