"""Netra settings the benchmarks give their servers (environment variables), and why.

A benchmark measures the hot path, not quotas, password hashing or a UI nicety; each group
below lifts one of those out of the way and the README says so wherever numbers are shown.
"""

from __future__ import annotations

CHUNK_DELAY_ENV = "NETRA_MODELS__OFFLINE_CHUNK_DELAY_MS"
"""The offline model's pause between streamed words (15 ms by default, so the chat page shows
streaming); 0 in the run benchmarks so the server, not a sleep, is measured."""
UNLIMITED_TIER_ENV = {
    "NETRA_TIERS__FREE__RUNS_PER_MINUTE": "0",
    "NETRA_TIERS__FREE__TOKENS_PER_DAY": "0",
    "NETRA_TIERS__FREE__MAX_CONCURRENT_RUNS_PER_USER": "64",
}
"""New accounts' tier limits lifted: 30 runs a minute would stop a load benchmark."""
CHEAP_PASSWORDS_ENV = {
    "NETRA_AUTH__PASSWORD_TIME_COST": "1",
    "NETRA_AUTH__PASSWORD_MEMORY_KIB": "64",
}
"""argon2id at its cheapest: signing up 1,000 users at the default cost (3 passes over
64 MiB) takes minutes of CPU on the server core, outside anything measured."""
UNLIMITED_RUNS_ENV = {
    "NETRA_LIMITS__MAX_EXECUTING_RUNS": "0",
    "NETRA_LIMITS__MAX_QUEUED_RUNS": "0",
}
"""The instance's own caps (256 executing, 1,000 queued) off: the event-path benchmark runs
one or two streaming runs per socket on 1,000 sockets at once."""
SOCKETS_PER_USER_ENV = "NETRA_WEBSOCKET__MAX_CONNECTIONS_PER_USER"
"""16 by default; the idle-socket benchmark opens 5,000 sockets for a few users."""
