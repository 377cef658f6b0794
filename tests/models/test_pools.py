"""Model endpoint pools: a provider with several base URLs, each a real fake server on
127.0.0.1 answering through the real provider code. Calls go to the endpoint with the fewest
in flight among those up; a failing endpoint is taken out by its circuit breaker or its
health probe and comes back once its probe passes."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest

from netra.circuit import CircuitState
from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.errors import ConfigurationError, ModelUnavailable
from netra.models.base import ChatMessage, ModelRequest, TextDelta
from netra.models.catalog import ModelCatalog, ModelRegistry, provider_service
from netra.models.failover import FailoverNote
from netra.models.offline import OfflineModel
from netra.models.provider import Provider
from netra.services import InstanceMetrics, ServiceRegistry
from tests.conftest import ProviderFactory, ServerFactory
from tests.models.fake_providers import FAKE_KEY, FakeProvider, Reply, openai_text
from tests.support import answer_text, eventually, make_user, open_socket

REQUEST = ModelRequest((ChatMessage("user", "hi"),), ())
SERVICE = provider_service("pool")


def _pool(fakes: Iterable[FakeProvider], *, probe_interval_s: float) -> dict[str, Any]:
    return {
        "kind": "openai",
        "base_url": [fake.openai_url for fake in fakes],
        "api_key": FAKE_KEY,
        "timeout_s": 10,
        "max_retries": 0,
        "probe_interval_s": probe_interval_s,
    }


def _answering(*fakes: FakeProvider) -> None:
    for fake in fakes:
        fake.responder = lambda _body: openai_text("pong")


def _completions(fake: FakeProvider) -> int:
    return sum(r.path == "/v1/chat/completions" for r in fake.received)


class Pool:
    """A catalog over ``pool:llama3.1`` (and its fallbacks), its probes running."""

    def __init__(self, catalog: ModelCatalog, services: ServiceRegistry[Provider]) -> None:
        self.catalog = catalog
        self.services = services
        self.notes: list[FailoverNote] = []

    async def _notify(self, note: FailoverNote) -> None:
        self.notes.append(note)

    def model(self, *fallbacks: str) -> Any:
        return self.catalog.for_run(["pool:llama3.1", *fallbacks], notify=self._notify)

    async def ask(self, *fallbacks: str) -> str:
        parts = [part async for part in self.model(*fallbacks).stream(REQUEST)]
        return "".join(part.text for part in parts if isinstance(part, TextDelta))

    def state(self, fake: FakeProvider) -> InstanceMetrics:
        return self.services.metrics(SERVICE)[fake.openai_url]


@asynccontextmanager
async def pool(providers: dict[str, Any], *, probe_interval_s: float = 0) -> AsyncIterator[Pool]:
    """Threshold 1 and an hour's cool-down: only a probe brings an open circuit back."""
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides={"models": {"providers": providers}}
    )
    builtins = ModelRegistry("model")
    builtins.register("offline", OfflineModel(chunk_delay_s=0))
    services: ServiceRegistry[Provider] = ServiceRegistry(failure_threshold=1, reset_timeout_s=3600)
    catalog = ModelCatalog(config, builtins=builtins, services=services)
    catalog.start()
    try:
        yield Pool(catalog, services)
    finally:
        await catalog.aclose()


async def test_calls_spread_over_the_healthy_endpoints_and_one_down_rejoins_once_its_probe_passes(
    providers: ProviderFactory,
) -> None:
    a, b, c = providers(), providers(), providers()
    _answering(a, b, c)
    async with pool({"pool": _pool((a, b, c), probe_interval_s=0.05)}) as p:
        for _ in range(6):
            assert await p.ask() == "pong"
        assert [_completions(f) for f in (a, b, c)] == [2, 2, 2]  # ties take turns
        await eventually(lambda: min(f.probes for f in (a, b, c)) >= 2, "every endpoint probed")

        c.down = True
        await eventually(
            lambda: not p.state(c).healthy or p.state(c).circuit is CircuitState.OPEN,
            "the replica that is down taken out (by its probe or its breaker)",
        )
        before = [_completions(f) for f in (a, b, c)]
        for _ in range(6):
            assert await p.ask() == "pong"  # never a failed call: the others answer
        after = [_completions(f) for f in (a, b, c)]
        assert after[2] == before[2]  # none reached it while it was out
        assert (after[0] - before[0], after[1] - before[1]) == (3, 3)
        assert p.state(c).last_error is not None and "503" in p.state(c).last_error
        assert p.notes == []

        c.down = False
        await eventually(
            lambda: p.state(c).healthy and p.state(c).circuit is not CircuitState.OPEN,
            "the replica back in the choice once its probe passes",
        )
        for _ in range(3):
            assert await p.ask() == "pong"
        assert [_completions(f) - n for f, n in zip((a, b, c), after, strict=True)] == [1, 1, 1]
        assert p.state(c).circuit is CircuitState.CLOSED


async def test_a_probe_waits_longer_than_a_short_call_timeout(
    providers: ProviderFactory,
) -> None:
    """A provider whose call timeout is short, for a fast failover, keeps an endpoint that
    lists its models more slowly than that: a probe waits up to ``PROBE_TIMEOUT_S``."""
    a = providers()
    _answering(a)
    a.probe_delay_s = 0.5  # longer than the calls' timeout, well within the probe's
    short = {**_pool((a,), probe_interval_s=0.05), "timeout_s": 0.2}
    async with pool({"pool": short}) as p:
        assert await p.ask() == "pong"  # the provider is built: its probes start
        await eventually(lambda: a.probes_answered >= 2, "two slow probes answered")
        state = p.state(a)
        assert state.healthy and state.last_error is None, state
        assert await p.ask() == "pong"


async def test_a_failing_endpoint_has_its_circuit_opened_and_its_call_is_made_on_another(
    providers: ProviderFactory,
) -> None:
    a, b, c = providers(), providers(), providers()
    _answering(a, b, c)
    c.down = True
    async with pool({"pool": _pool((a, b, c), probe_interval_s=0)}) as p:  # breakers only
        for _ in range(9):
            assert await p.ask() == "pong"
        # One call reached it, failed, and was made again on another endpoint; its circuit
        # then kept every later call away.
        assert _completions(c) == 1 and _completions(a) + _completions(b) == 9
        state = p.state(c)
        assert (state.circuit, state.failures, state.in_flight) == (CircuitState.OPEN, 1, 0)
        assert state.last_error == "pool:llama3.1 answered HTTP 503: this replica is down"
        assert p.notes == []  # the same model answered: no failover
        assert c.probes == 0


async def test_when_every_endpoint_is_out_the_run_moves_on_to_its_next_model(
    providers: ProviderFactory,
) -> None:
    a, b, backup = providers(), providers(), providers()
    a.down = b.down = True
    _answering(backup)
    pools = {
        "pool": _pool((a, b), probe_interval_s=0),
        "backup": {**_pool((backup,), probe_interval_s=0), "base_url": backup.openai_url},
    }
    async with pool(pools) as p:
        assert await p.ask("backup:gpt-4o-mini") == "pong"
        assert (_completions(a), _completions(b)) == (1, 1)  # each endpoint tried once
        [note] = p.notes
        failed = "pool:llama3.1 answered HTTP 503: this replica is down"
        first, second = sorted(f.openai_url for f in (a, b))  # the rotation's order
        assert note.as_dict() == {
            "from": "pool:llama3.1",
            "to": "backup:gpt-4o-mini",
            "reason": f"{failed} (at {first}); {failed} (at {second})",
        }

        assert await p.ask("backup:gpt-4o-mini") == "pong"  # both circuits open: skipped
        assert (_completions(a), _completions(b)) == (1, 1)
        assert p.notes[-1].reason == "its provider failed repeatedly; its circuit is open"

        with pytest.raises(ModelUnavailable, match="was skipped: its provider failed"):
            await p.ask()


async def test_concurrent_calls_go_to_the_endpoint_with_the_fewest_in_flight(
    providers: ProviderFactory,
) -> None:
    a, b, c = providers(), providers(), providers()
    _answering(a, b, c)
    resume = threading.Event()
    held = Reply(events=openai_text("slow answer").events, hang_after=2, resume=resume)
    try:
        async with pool({"pool": _pool((a, b, c), probe_interval_s=0)}) as p:
            slow = min((a, b, c), key=lambda f: f.openai_url)  # first in the rotation
            slow.push(held)
            async with aclosing(p.model().stream(REQUEST)) as stream:
                assert await anext(stream) == TextDelta("slow")  # the call is in flight
                assert p.state(slow).in_flight == 1
                for _ in range(4):  # round robin would send the third of these to it
                    assert await p.ask() == "pong"
                assert _completions(slow) == 1
                assert sorted(_completions(f) for f in (a, b, c) if f is not slow) == [2, 2]
                resume.set()
                rest = [part async for part in stream]
            assert "".join(x.text for x in rest if isinstance(x, TextDelta)) == " answer"
            assert p.state(slow).in_flight == 0

            resume.clear()
            for f in (a, b, c):
                f.push(Reply(events=openai_text("cut short").events, hang_after=2, resume=resume))
            async with aclosing(p.model().stream(REQUEST)) as stream:
                await anext(stream)
                busy = [u for u, s in p.services.metrics(SERVICE).items() if s.in_flight]
                assert len(busy) == 1
            # Abandoned half-way: no longer in flight, and not held against the endpoint.
            state = p.services.metrics(SERVICE)[busy[0]]
            assert (state.in_flight, state.failures, state.circuit) == (0, 0, "closed")
    finally:
        resume.set()


async def test_ready_and_metrics_show_each_endpoint_and_one_down_is_degraded_not_unready(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    a, b = providers(), providers()
    _answering(a, b)
    server = server_factory(
        models={
            "default": "pool:llama3.1",
            "providers": {"pool": _pool((a, b), probe_interval_s=0.05)},
        }
    )
    async with httpx.AsyncClient(base_url=server.url) as http:

        async def endpoints() -> dict[str, dict[str, Any]]:
            body = (await http.get("/ready")).json()
            return {e["url"]: e for e in body["checks"]["model_providers"]["pool"]["endpoints"]}

        await eventually(lambda: a.probes > 0 and b.probes > 0, "both endpoints probed")
        ready = await http.get("/ready")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        assert await endpoints() == {
            fake.openai_url: {
                "url": fake.openai_url,
                "healthy": True,
                "circuit": "closed",
                "in_flight": 0,
                "last_error": None,
            }
            for fake in (a, b)
        }

        b.down = True

        async def b_is_down() -> bool:
            return not (await endpoints())[b.openai_url]["healthy"]

        await eventually(b_is_down, "/ready showing the endpoint that is down")
        ready = await http.get("/ready")
        assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
        pool_check = ready.json()["checks"]["model_providers"]["pool"]
        assert pool_check["healthy"] is True  # one endpoint is enough to take calls
        down = next(e for e in pool_check["endpoints"] if e["url"] == b.openai_url)
        assert down["last_error"] == (f"health check failed: {b.openai_url} answered HTTP 503")

        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("hello")
        events = await socket.run_to_end(ack["run_id"])
        await socket.close()
        assert answer_text(events) == "pong" and _completions(b) == 0

        metrics = (await http.get("/metrics")).text
        labels = f'endpoint="{b.openai_url}",provider="pool"'
        assert f"netra_model_endpoint_healthy{{{labels}}} 0.0" in metrics
        assert f'netra_model_endpoint_circuit{{{labels},state="closed"}} 1.0' in metrics
        assert f'netra_model_endpoint_circuit{{{labels},state="open"}} 0.0' in metrics
        assert f"netra_model_endpoint_in_flight{{{labels}}} 0.0" in metrics
        alive = f'endpoint="{a.openai_url}",provider="pool"'
        assert f"netra_model_endpoint_healthy{{{alive}}} 1.0" in metrics
        assert f"netra_model_endpoint_calls_total{{{alive}}} 1.0" in metrics


@pytest.mark.parametrize(
    ("base_url", "error"),
    [
        (["http://10.0.0.7/v1", "http://10.0.0.7/v1/"], "lists http://10.0.0.7/v1 more than once"),
        ([], "a pool needs at least one URL"),
        (["10.0.0.7:8000/v1"], "'10.0.0.7:8000/v1' is not an http:// or https:// URL"),
        ("ftp://10.0.0.7/v1", "'ftp://10.0.0.7/v1' is not an http:// or https:// URL"),
        (["http://me:secret@10.0.0.7/v1"], "must not carry credentials"),
    ],
    ids=["duplicate", "empty", "no-scheme", "not-http", "credentials"],
)
def test_pool_settings_are_checked_with_a_one_line_error(base_url: object, error: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        UnifiedConfigurationManager(
            IsolatedEnvironment.isolated(),
            overrides={"models": {"providers": {"vllm": {"base_url": base_url}}}},
        )
    assert "models.providers.vllm.base_url" in caught.value.message
    assert error in caught.value.message
    assert "\n" not in caught.value.message


def test_a_pool_is_one_endpoint_per_base_url_sharing_the_providers_settings() -> None:
    urls = ["http://10.0.0.7:8000/v1", "http://10.0.0.8:8000/v1"]
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_MODELS__PROVIDERS__VLLM__BASE_URL": f'["{urls[0]}", "{urls[1]}"]',
            "NETRA_MODELS__PROVIDERS__VLLM__TIMEOUT_S": "20",
            "NETRA_MODELS__DEFAULT": "vllm:qwen",
        }
    )
    config = UnifiedConfigurationManager(env)
    assert config.settings.models.providers["vllm"].urls == urls
    assert config.problems() == []  # local endpoints need no key
    services: ServiceRegistry[Provider] = ServiceRegistry()
    builtins = ModelRegistry("model")
    ModelCatalog(config, builtins=builtins, services=services)
    assert [p.endpoint for p in services.instances(provider_service("vllm"))] == urls
    assert list(services.metrics(provider_service("vllm"))) == urls
