"""The ``Provider`` protocol, and what the OpenAI-compatible and Anthropic providers share:
turning a failed call into Netra's error, judging a health probe, reading tool arguments,
pricing usage."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from netra.errors import (
    ConfigurationError,
    ModelBehaviorError,
    ModelRequestRejected,
    ModelUnavailable,
    NetraError,
    UnknownModel,
    did_you_mean,
)
from netra.model_ids import ModelId
from netra.models.base import Model, Usage
from netra.models.prices import ModelPrice, PriceTable
from netra.settings.models import ProviderSettings

NO_KEY = "none"
"""Sent as the key to servers that need none (the SDKs insist on one)."""
DETAIL_CHARS = 300
RETRYABLE_STATUS = frozenset({408, 429})
"""Statuses that say "not now" (request timeout, rate limit), like any 5xx: fail over."""
PROBE_TIMEOUT_S = 5.0
"""How long a health probe waits for its answer, whatever the provider's ``timeout_s``: a
call timeout made short for a fast failover must not take an endpoint out of the choice
for one slow answer to ``GET /models`` (the ``ServiceRegistry`` caps a check at 5 s too)."""


class Provider(Protocol):
    """One endpoint of a configured provider, serving its models (OpenAI-compatible or
    Anthropic); a provider with several base URLs (a pool) has one per URL."""

    @property
    def name(self) -> str:
        """The name model ids use before the colon."""
        ...

    @property
    def endpoint(self) -> str:
        """The base URL: the instance id of this endpoint in the ``ServiceRegistry``."""
        ...

    def model(self, name: str, prices: PriceTable) -> Model:
        """A model of this provider, priced from ``prices``; raises ``ConfigurationError``
        when it cannot be called (no API key for a public API)."""
        ...

    async def probe(self) -> bool:
        """True when the endpoint answers a cheap request (``GET /models``); raises
        ``ModelUnavailable`` (or ``ConfigurationError``) saying why it does not."""
        ...

    async def aclose(self) -> None:
        """Close the endpoint's connections."""
        ...


def api_key(name: str, settings: ProviderSettings) -> str:
    """The key to hand the SDK; a public API (no ``base_url``) without one is a configuration
    error that says which setting to set."""
    key = settings.api_key
    if key is None and not settings.urls:
        raise ConfigurationError(
            f"model provider {name!r} needs an API key: set "
            f"NETRA_MODELS__PROVIDERS__{name.upper()}__API_KEY "
            f"(or models.providers.{name}.api_key in the config file)"
        )
    return key.get_secret_value() if key is not None else NO_KEY


def probe_verdict(endpoint: str, *, status: int | None, timed_out: bool = False) -> bool:
    """Whether an endpoint that answered a probe with ``status`` (None: no answer) can take
    calls: any answer but 408, 429 or a 5xx says it is up — even a refusal, from a server
    without ``GET /models`` or a key without the right to list models. Raises
    ``ModelUnavailable`` otherwise."""
    if timed_out:
        raise ModelUnavailable(f"{endpoint} timed out")
    if status is None:
        raise ModelUnavailable(f"{endpoint} could not be reached")
    if status in RETRYABLE_STATUS or status >= 500:
        raise ModelUnavailable(f"{endpoint} answered HTTP {status}")
    return True


def sdk_failure(
    model_id: ModelId,
    settings: ProviderSettings,
    known_models: Iterable[str],
    *,
    body: object,
    message: str,
    status: int | None,
    timed_out: bool,
) -> NetraError:
    """A failed SDK call as Netra's error, with the provider's API key kept out of it."""
    key = settings.api_key
    secret = key.get_secret_value() if key is not None else None
    return call_failure(
        model_id,
        status=status,
        detail=error_detail(body, message, secret=secret),
        timed_out=timed_out,
        known_models=known_models,
    )


def call_failure(
    model_id: ModelId,
    *,
    status: int | None,
    detail: str,
    timed_out: bool = False,
    known_models: Iterable[str] = (),
) -> NetraError:
    """Netra's error for a failed provider call.

    Timeouts, connection errors, 429 and 5xx are ``ModelUnavailable`` (a run fails over);
    404 is ``UnknownModel``; any other refusal is ``ModelRequestRejected``.
    """
    if timed_out:
        return ModelUnavailable(f"{model_id} timed out")
    if status is None:
        return ModelUnavailable(f"{model_id} could not be reached: {detail}")
    if status in RETRYABLE_STATUS or status >= 500:
        return ModelUnavailable(f"{model_id} answered HTTP {status}: {detail}")
    if status == 404:
        return UnknownModel(
            f"provider {model_id.provider!r} does not serve model {model_id.name!r}"
            f"{did_you_mean(model_id.name, known_models)} (HTTP 404: {detail}); check the model "
            "name and the provider's base_url"
        )
    return ModelRequestRejected(f"{model_id} refused the request (HTTP {status}): {detail}")


def error_detail(body: object, fallback: str, *, secret: str | None) -> str:
    """The provider's own error message from a response body, short and without the key."""
    message: object = None
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
    text = " ".join(str(message or fallback).split())
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def tool_arguments(model_id: ModelId, tool: str, raw: str) -> dict[str, Any]:
    """Streamed argument fragments, joined, as the JSON object a tool call needs."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelBehaviorError(
            f"{model_id} called tool {tool!r} with arguments that are not JSON "
            f"({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(value, dict):
        raise ModelBehaviorError(
            f"{model_id} called tool {tool!r} with arguments that are not a JSON object"
        )
    return value


def priced(
    price: ModelPrice | None, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> Usage:
    """A call's usage at its price: ``input_tokens`` counts the cached ones too."""
    cost = (
        price.cost(input_tokens, output_tokens, cached_input_tokens) if price is not None else 0.0
    )
    return Usage(input_tokens, output_tokens, cost, cached_input_tokens)
