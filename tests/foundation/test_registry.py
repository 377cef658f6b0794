from __future__ import annotations

import threading

import pytest

from netra.errors import Conflict, InvalidRequest, NotFound
from netra.registry import RegistryFrozen, UniversalRegistry


def test_register_lookup_factories_tags_and_removal() -> None:
    registry: UniversalRegistry[object] = UniversalRegistry("widget")
    registry.register("a", "A", tags=("x",))
    registry.register_factory("b", lambda: ["fresh"], tags=("x", "y"))
    assert registry.get("a") == "A"
    first, second = registry.create("b"), registry.create("b")
    assert first == second and first is not second
    assert registry.list_by_tag("x") == ["a", "b"] and registry.list_by_tag("y") == ["b"]
    assert registry.has("a")
    registry.remove("a")
    assert not registry.has("a")
    with pytest.raises(NotFound):
        registry.get("a")
    assert registry.metrics.factory_creations == 2
    assert registry.metrics.misses == 1


def test_duplicates_validators_and_freeze() -> None:
    registry: UniversalRegistry[int] = UniversalRegistry("number")

    def positive(_key: str, value: int) -> None:
        if value <= 0:
            raise ValueError("must be positive")

    registry.add_validator(positive)
    registry.register("one", 1)
    with pytest.raises(Conflict):
        registry.register("one", 2)
    registry.register("one", 3, override=True)
    with pytest.raises(InvalidRequest, match="must be positive"):
        registry.register("bad", -1)
    registry.freeze()
    with pytest.raises(RegistryFrozen):
        registry.register("two", 2)
    assert registry.get("one") == 3
    assert registry.health()["status"] == "healthy"


def test_twenty_threads_keep_exact_counts() -> None:
    registry: UniversalRegistry[int] = UniversalRegistry("number")

    def work(thread: int) -> None:
        for i in range(25):
            registry.register(f"{thread}-{i}", i)
            assert registry.get(f"{thread}-{i}") == i

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry) == 500
    assert registry.metrics.registrations == 500 and registry.metrics.lookups == 500
