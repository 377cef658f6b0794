"""FailoverModel: a run's models in order; the next one answers when one is unavailable.

A model that times out, cannot be reached, is rate limited (429) or fails (5xx) *before it
has streamed any text or tool call* hands over to the next model, and the run is told (an
``agent_thinking`` note). Once output has started, a failure fails the run: the user has
seen part of an answer, and another model would start a different one. Any other error
(malformed output, a refused request, an unknown model) fails the run at once.

Each provider endpoint has a circuit breaker in the ``ServiceRegistry``: only unavailability
counts against it, and a provider whose circuit is open is skipped without a call until its
cool-down has passed.

Every call's usage goes to the run's ``meter`` as it arrives, under the model that answered
and the price it was charged at (``PricedCall``), before the caller sees it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from netra.errors import ModelUnavailable
from netra.models.base import Model, ModelRequest, StreamPart, Usage
from netra.models.prices import ModelPrice
from netra.models.provider import Provider
from netra.services import ServiceRegistry, ServiceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model a run may use, and the provider endpoint behind it."""

    model: Model
    service: str | None = None
    """The provider's service in the ``ServiceRegistry``; None for built-in models."""
    endpoint: str | None = None
    """The provider's instance id in that service (its base URL)."""
    price: ModelPrice | None = None
    """What the model's calls are charged at; None: the price table does not know it."""
    prices_as_of: str = ""
    """The date of the price table ``price`` comes from."""


@dataclass(frozen=True, slots=True)
class PricedCall:
    """One model call's usage, the model that made it, and the price it was charged at."""

    model: str
    usage: Usage
    price: ModelPrice | None
    prices_as_of: str


@dataclass(frozen=True, slots=True)
class FailoverNote:
    """What the run is told when it moves on to its next model."""

    failed: str
    reason: str
    next: str

    @property
    def text(self) -> str:
        return f"{self.failed} is unavailable ({self.reason}); trying {self.next}."

    def as_dict(self) -> dict[str, str]:
        return {"from": self.failed, "to": self.next, "reason": self.reason}


Notify = Callable[[FailoverNote], Awaitable[None]]
Meter = Callable[[PricedCall], Awaitable[None]]


class FailoverModel:
    """A ``Model`` over candidates tried in order (one candidate: still circuit-guarded)."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        services: ServiceRegistry[Provider],
        notify: Notify,
        meter: Meter | None = None,
    ) -> None:
        if not candidates:
            raise ValueError("a FailoverModel needs at least one candidate")
        self._candidates = tuple(candidates)
        self._services = services
        self._notify = notify
        self._meter = meter

    @property
    def id(self) -> str:
        return self._candidates[0].model.id

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        failures: list[str] = []
        for position, candidate in enumerate(self._candidates):
            model_id = candidate.model.id
            try:
                self._admit(candidate)
            except ServiceUnavailable:
                reason = "its provider failed repeatedly; its circuit is open"
                failures.append(f"{model_id} was skipped: {reason}")
                await self._move_on(position, reason)
                continue
            streamed = False
            try:
                async for part in candidate.model.stream(request):
                    if isinstance(part, Usage):
                        if self._meter is not None:
                            await self._meter(
                                PricedCall(model_id, part, candidate.price, candidate.prices_as_of)
                            )
                    else:
                        streamed = True
                    yield part
            except ModelUnavailable as exc:
                self._settle(candidate, ok=False)
                if streamed:
                    raise ModelUnavailable(f"{exc.message} after it had started answering") from exc
                failures.append(exc.message)
                await self._move_on(position, exc.message)
                continue
            except Exception:
                self._settle(candidate, ok=True)  # it answered; what it said is another matter
                raise
            self._settle(candidate, ok=True)
            return
        if len(failures) == 1:
            raise ModelUnavailable(failures[0])
        raise ModelUnavailable("no model could answer: " + "; ".join(failures))

    def _admit(self, candidate: Candidate) -> None:
        """Raises ``ServiceUnavailable`` while the candidate's circuit refuses calls."""
        if candidate.service is not None:
            self._services.choose(candidate.service)

    def _settle(self, candidate: Candidate, *, ok: bool) -> None:
        if candidate.service is not None and candidate.endpoint is not None:
            self._services.report(candidate.service, candidate.endpoint, ok=ok)

    async def _move_on(self, position: int, reason: str) -> None:
        failed = self._candidates[position].model.id
        if position + 1 >= len(self._candidates):
            log.warning("model %s unavailable (%s); no model left to try", failed, reason)
            return
        note = FailoverNote(failed, reason, self._candidates[position + 1].model.id)
        log.warning("model %s unavailable (%s); trying %s", failed, reason, note.next)
        await self._notify(note)
