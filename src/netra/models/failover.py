"""FailoverModel: a run's models in order; the next one answers when one is unavailable.

A model that times out, cannot be reached, is rate limited (429) or fails (5xx) *before it
has streamed any text or tool call* hands over to the next model, and the run is told (an
``agent_thinking`` note). Once output has started, a failure fails the run: the user has
seen part of an answer, and another model would start a different one. Any other error
(malformed output, a refused request, an unknown model) fails the run at once.

A provider may have several endpoints (a pool). Each call of a provider's model goes to the
endpoint the ``ServiceRegistry`` picks: among those whose health probe passes and whose
circuit allows a call, the one with the fewest calls in flight (ties take turns). It is
counted in flight from the call until its stream ends, however it ends. Each endpoint has a
circuit breaker there: only unavailability counts against it, and an endpoint whose circuit is
open is skipped without a call until its cool-down has passed or its probe answers again.
When an endpoint is unavailable before any output, the call is made again on another endpoint
of the same provider, each endpoint at most once per call; when none is left that can take
it, the run moves on to its next model. Once output has started, nothing is retried.

Every call's usage goes to the run's ``meter`` as it arrives, under the model that answered
and the price it was charged at (``PricedCall``), before the caller sees it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from netra.errors import ModelUnavailable
from netra.models.base import Model, ModelRequest, StreamPart, Usage
from netra.models.prices import ModelPrice
from netra.models.provider import Provider
from netra.services import Lease, ServiceRegistry, ServiceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model a run may use, and the provider endpoints that serve it."""

    model: Model
    """The model (for a provider's: on its first endpoint; every endpoint's has its id)."""
    service: str | None = None
    """The provider's service in the ``ServiceRegistry``; None for built-in models."""
    on: Mapping[str, Model] = field(default_factory=dict)
    """The model on each endpoint of the provider, by base URL (its instance id there)."""
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


@dataclass(slots=True)
class _Attempt:
    """The calls of one candidate within one ``stream``."""

    answered: bool = False
    """A call streamed to its end."""
    reasons: list[str] = field(default_factory=list)
    """Why each call failed, in order."""
    tried: set[str] = field(default_factory=set)
    """The endpoints called, none of which is called again."""
    skipped: str | None = None
    """Why no call was made at all: no endpoint could take one."""


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
            attempt = _Attempt()
            async with aclosing(self._calls(candidate, request, attempt)) as parts:
                async for part in parts:
                    yield part
            if attempt.answered:
                return
            if attempt.skipped is not None:
                failures.append(f"{candidate.model.id} was skipped: {attempt.skipped}")
            else:
                failures.extend(attempt.reasons)
            await self._move_on(position, attempt.skipped or "; ".join(attempt.reasons))
        if len(failures) == 1:
            raise ModelUnavailable(failures[0])
        raise ModelUnavailable("no model could answer: " + "; ".join(failures))

    async def _calls(
        self, candidate: Candidate, request: ModelRequest, attempt: _Attempt
    ) -> AsyncGenerator[StreamPart, None]:
        """The candidate's call, made again on another of its provider's endpoints while the
        last one was unavailable before answering and another can take it."""
        while not attempt.answered:
            try:
                lease = self._admit(candidate, attempt.tried)
            except ServiceUnavailable as exc:
                if not attempt.reasons:  # not one call made: the provider is skipped
                    attempt.skipped = _unavailable(exc, len(candidate.on))
                return
            async with aclosing(self._call(candidate, lease, request, attempt)) as parts:
                async for part in parts:
                    yield part
            if lease is None:  # a built-in model: no other endpoint
                return
            if not attempt.answered:
                log.warning("%s; trying another endpoint", attempt.reasons[-1])

    async def _call(
        self,
        candidate: Candidate,
        lease: Lease[Provider] | None,
        request: ModelRequest,
        attempt: _Attempt,
    ) -> AsyncGenerator[StreamPart, None]:
        """One call, on the leased endpoint, which stays in flight until the call ends."""
        model = candidate.model if lease is None else candidate.on[lease.instance_id]
        streamed = False
        ok: bool | None = None  # stays None when the call is cancelled or abandoned
        error: str | None = None
        try:
            async for part in model.stream(request):
                if isinstance(part, Usage):
                    if self._meter is not None:
                        await self._meter(
                            PricedCall(model.id, part, candidate.price, candidate.prices_as_of)
                        )
                else:
                    streamed = True
                yield part
            ok = attempt.answered = True
        except ModelUnavailable as exc:
            ok, error = False, exc.message
            if streamed:
                raise ModelUnavailable(f"{exc.message} after it had started answering") from exc
            reason = exc.message
            if lease is not None:
                attempt.tried.add(lease.instance_id)
                if len(candidate.on) > 1:
                    reason = f"{reason} (at {lease.instance_id})"
            attempt.reasons.append(reason)
        except Exception:
            ok = True  # it answered; what it said is another matter
            raise
        finally:
            if lease is not None:
                self._services.release(lease, ok=ok, error=error)

    def _admit(self, candidate: Candidate, tried: set[str]) -> Lease[Provider] | None:
        """The endpoint of the candidate's next call (None for built-in models), counted in
        flight; ``ServiceUnavailable`` when none but those ``tried`` can take a call now."""
        if candidate.service is None:
            return None
        return self._services.acquire(candidate.service, strategy="least_loaded", exclude=tried)

    async def _move_on(self, position: int, reason: str) -> None:
        failed = self._candidates[position].model.id
        if position + 1 >= len(self._candidates):
            log.warning("model %s unavailable (%s); no model left to try", failed, reason)
            return
        note = FailoverNote(failed, reason, self._candidates[position + 1].model.id)
        log.warning("model %s unavailable (%s); trying %s", failed, reason, note.next)
        await self._notify(note)


def _unavailable(exc: ServiceUnavailable, endpoints: int) -> str:
    """Why a provider none of whose endpoints can take a call was skipped."""
    if not exc.unhealthy:
        return "its provider failed repeatedly; its circuit is open"
    if exc.unhealthy == endpoints:
        return "its provider does not answer its health probe"
    return "its provider's endpoints fail their health probe or have their circuit open"
