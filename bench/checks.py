"""Correctness checks shared by the benchmarks: a benchmark that silently measures a broken
system is worthless, so every violation is counted and any makes the exit status 1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import httpx

EVENTS_PAGE = 500
DELIVERY_VIOLATIONS = (
    "events_missing_on_socket",
    "events_not_persisted",
    "event_mismatch",
    "delivery_check_failed",
)
"""What `check_delivery` reports."""


class Violations:
    """Counts correctness violations and keeps the first few descriptions for stderr."""

    def __init__(self, kinds: Iterable[str], keep_per_kind: int = 3) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(kinds, 0))
        self.examples: list[str] = []
        self._keep = keep_per_kind

    def add(self, kind: str, detail: str, count: int = 1) -> None:
        assert kind in self.counts, kind
        if self.counts[kind] < self._keep:
            self.examples.append(f"{kind}: {detail}")
        self.counts[kind] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def check_delivery(
    http: httpx.AsyncClient,
    *,
    token: str,
    after_seq: int,
    received: dict[int, str],
    violations: Violations,
    who: str,
) -> None:
    """Every stored event of the user after `after_seq` (where its socket started), up to
    the newest one the socket saw, must have reached it; everything it got must be stored,
    under the same event id. `received` maps seq -> event_id as the socket got them."""
    headers = {"Authorization": f"Bearer {token}"}
    stored: dict[int, str] = {}
    after = after_seq
    while True:
        response = await http.get(
            "/events", params={"after_seq": after, "limit": EVENTS_PAGE}, headers=headers
        )
        if response.status_code != 200:
            violations.add(
                "delivery_check_failed",
                f"{who}: GET /events -> {response.status_code} {response.text[:200]}",
            )
            return
        items = response.json().get("items", [])
        for item in items:
            stored[int(item["seq"])] = str(item.get("event_id"))
        if len(items) < EVENTS_PAGE:
            break
        after = max(int(item["seq"]) for item in items)
    newest_seen = max(received, default=after_seq)
    missing = [seq for seq in stored if seq <= newest_seen and seq not in received]
    if missing:
        violations.add(
            "events_missing_on_socket",
            f"{who}: {len(missing)} stored events never sent, seqs {sorted(missing)[:5]}",
            count=len(missing),
        )
    for seq, event_id in received.items():
        if seq not in stored:
            violations.add("events_not_persisted", f"{who}: seq {seq} not in GET /events")
        elif stored[seq] != event_id:
            violations.add(
                "event_mismatch", f"{who}: seq {seq} is {event_id} live, {stored[seq]} stored"
            )
